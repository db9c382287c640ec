"""What the project declares, read offline: the SAM template, its expansion, the roles it grants, and the
schedule expressions it fires on. Everything else in the tools reads the project through here."""
