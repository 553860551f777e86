"""Errors a user can act on.

Every failure caused by input (params, archives, images, weights) or by the environment is raised
as a :class:`VisionlabError` whose message says what went wrong and where; the stage runner prints
that message alone, without a traceback.
"""


class VisionlabError(Exception):
    """A failure the user can fix; its message names the thing at fault."""


class ParamsError(VisionlabError):
    """params.yaml holds an unknown key, a wrong type or an out-of-range value."""


class DownloadError(VisionlabError):
    """An archive could not be fetched."""


class ChecksumError(DownloadError):
    """Fetched bytes do not match the expected sha256 or size."""


class UnsafeArchiveError(VisionlabError):
    """An archive member would escape the target folder, is a device, or the archive is too big."""


class MissingArtifactError(VisionlabError):
    """A stage input (manifest, checkpoint, weights file) is missing or unreadable."""
