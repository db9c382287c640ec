"""The whole system on one machine: the embedded PostgreSQL and moto (local.stack), the Telegram stand-in
(local.telegram), the real-time stack (local.up), the simulated month (local.simulate, local.demo) and the run of
the built artifact under SAM (local.lambda_test)."""
