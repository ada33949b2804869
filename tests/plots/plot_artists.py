"""Finding a plot's artists by the gid perfkit gives them (a module name no other test folder uses)."""


def by_gid(ax, gid, kind="lines"):
    """The artists of ``ax.<kind>`` (lines, patches, collections, texts) whose gid is ``gid``."""
    return [a for a in getattr(ax, kind) if a.get_gid() == gid]
