"""ExpenseBot's shared library: the code every Lambda function of the application loads from the layer."""
