"""The Textual dashboard (coming next). Until it lands, `backfill` shows the coverage report."""
