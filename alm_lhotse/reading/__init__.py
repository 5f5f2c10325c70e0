"""Reading: discover manifest files, stream their lines, parse and validate entries."""
