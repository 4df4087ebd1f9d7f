"""The one exception type a user sees as a single line (no traceback) from the CLI."""


class VisionZooError(Exception):
    """Bad input or an impossible request, explained in one line that names the file or option at fault."""
