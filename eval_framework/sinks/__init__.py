"""Where finished bundles go: W&B runs and artifacts, the Hugging Face Hub; the export ledger;
the options that choose them (``settings.SinkSettings``).

Every sink is a function of a bundle directory, so logging live and uploading later give the
same records.
"""
