"""What a person sees: the progress panel, the console filter and the report."""
