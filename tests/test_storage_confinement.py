"""Storage stays in its root: paths, patterns and symlinks leading out, and reserved folders."""

import asyncio
from pathlib import Path

import attrs
import pytest

from _storage_helpers import (
    DAY,
    MUTATING,
    OPERATIONS,
    PARTIAL,
    age,
    snapshot,
)
from persistence.exceptions import NotAFileError, OutsideRootError, StorageError
from persistence.storage import (
    Storage,
    backup,
    clean_temp,
    list_backups,
    list_files,
    open_storage,
    prune_backups,
    read_bytes,
    write_text,
)

# --- confinement -----------------------------------------------------------------------------


@attrs.frozen
class Trapped:
    """A storage beside files outside it, with symlinks leading out: shared, never changed."""

    storage: Storage
    base: Path
    outside: dict[str, bytes | str]
    inside: dict[str, bytes | str]

    def unchanged(self) -> bool:
        """Tell whether nothing inside or outside the root has changed since it was made."""
        root = self.storage.root
        return snapshot(self.base, skip=root) == self.outside and snapshot(root) == self.inside


@pytest.fixture(name="trapped", scope="module")
def trapped_fixture(tmp_path_factory: pytest.TempPathFactory) -> Trapped:
    """Plant files outside a root and symlinks out of it, once for the confinement tests."""
    base = tmp_path_factory.mktemp("trapped")
    storage = asyncio.run(open_storage(base / "root"))
    outside = base / "outside"
    (outside / "deeper").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret")
    (base / "root2").mkdir()
    (base / "root2/secret.txt").write_text("sibling with a common prefix")
    root = storage.root
    (root / "inside.txt").write_bytes(b"inside")
    (root / "link_file").symlink_to(outside / "secret.txt")
    (root / "link_dir").symlink_to(outside)
    (root / "chain_mid").symlink_to(outside / "secret.txt")
    (root / "chain").symlink_to("chain_mid")
    (root / "sub").mkdir()
    (root / "sub/up").symlink_to("../..")
    (root / "sub/relative").symlink_to("../../outside/secret.txt")
    (root / "to_backups").symlink_to(".backups")
    (root / "to_tmp").symlink_to(root / ".tmp")
    (root / ".tmp/x.txt").write_text("temp")
    (root / ".backups/x.txt").write_text("backup")
    return Trapped(storage, base, snapshot(base, skip=root), snapshot(root))


ESCAPES = [
    "../outside/secret.txt",
    "../outside/new.txt",
    "./../outside/secret.txt",
    "sub/../../outside/secret.txt",
    "../root2/secret.txt",
    "{base}/outside/secret.txt",
    "{base}/outside/new.txt",
    "{base}/root/../outside/secret.txt",
    "{base}/root2/secret.txt",
    "{base}",
    "/",
    "link_file",
    "link_dir/secret.txt",
    "link_dir/new.txt",
    "link_dir/deeper/new.txt",
    "chain",
    "chain_mid",
    "sub/up/outside/secret.txt",
    "sub/relative",
    "sub/up",
]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_paths_out_of_the_root_are_refused(
    trapped: Trapped, operation: str, path: str
) -> None:
    """A path leading out of the root, by '..', absolutely or by symlinks, is refused untouched."""
    shown = path.format(base=trapped.base)
    with pytest.raises(OutsideRootError) as caught:
        await OPERATIONS[operation](trapped.storage, shown)
    assert caught.value.path == shown
    assert shown in str(caught.value)
    assert trapped.unchanged()


RESERVED_PATHS = [
    ".tmp/x.txt",
    ".backups/x.txt",
    ".tmp/new.txt",
    "sub/../.tmp/x.txt",
    "to_tmp/x.txt",
    "to_backups/x.txt",
    "{root}/.backups/x.txt",
    PARTIAL,
    f"sub/{PARTIAL}",
]


@pytest.mark.parametrize("path", RESERVED_PATHS)
@pytest.mark.parametrize("operation", MUTATING)
async def test_reserved_folders_cannot_be_changed_through_file_operations(
    trapped: Trapped, operation: str, path: str
) -> None:
    """Writing, moving, deleting or backing up inside .tmp/ or .backups/ is refused."""
    with pytest.raises(OutsideRootError, match="reserved"):
        await OPERATIONS[operation](trapped.storage, path.format(root=trapped.storage.root))
    assert trapped.unchanged()


BAD_PATHS = ["", "a\0b", "inside.txt\0/../../outside/secret.txt"]


@pytest.mark.parametrize("path", BAD_PATHS)
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
async def test_empty_paths_and_nul_bytes_are_refused(
    trapped: Trapped, operation: str, path: str
) -> None:
    """An empty path or one holding a NUL byte is refused, naming it."""
    with pytest.raises(StorageError, match=r"is empty|NUL") as caught:
        await OPERATIONS[operation](trapped.storage, path)
    assert caught.value.path == path
    assert trapped.unchanged()


ROOT_ITSELF = [".", "./", "sub/..", "{root}", "{root}/sub/.."]


@pytest.mark.parametrize("path", ROOT_ITSELF)
@pytest.mark.parametrize("operation", sorted(set(OPERATIONS) - {"info"}))
async def test_the_root_itself_is_not_a_file(trapped: Trapped, operation: str, path: str) -> None:
    """The root given where a file is needed is refused with NotAFileError."""
    with pytest.raises(NotAFileError, match="storage root"):
        await OPERATIONS[operation](trapped.storage, path.format(root=trapped.storage.root))
    assert trapped.unchanged()


PATTERNS = ["../*", "../outside/*", "sub/../../*", "/etc/*", "/*", "*/../../*"]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("recursive", [False, True])
async def test_glob_patterns_out_of_the_root_are_refused(
    trapped: Trapped, pattern: str, *, recursive: bool
) -> None:
    """A pattern with '..' or an absolute pattern is refused, naming it."""
    with pytest.raises(OutsideRootError) as caught:
        await list_files(trapped.storage, pattern, recursive=recursive)
    assert caught.value.path == pattern


async def test_a_symlink_loop_is_an_error(storage: Storage) -> None:
    """A symlink loop is a StorageError naming the path, not a hang."""
    (storage.root / "loop_a").symlink_to("loop_b")
    (storage.root / "loop_b").symlink_to("loop_a")
    with pytest.raises(StorageError) as caught:
        await read_bytes(storage, "loop_a")
    assert caught.value.path == "loop_a"


@pytest.mark.parametrize("pattern", ["", ".", "a\0"])
async def test_empty_patterns_are_refused(storage: Storage, pattern: str) -> None:
    """An empty pattern, or one with a NUL byte, is a StorageError."""
    with pytest.raises(StorageError, match=r"empty pattern|NUL"):
        await list_files(storage, pattern)


async def test_a_temp_folder_swapped_for_a_symlink_is_refused(
    storage: Storage, tmp_path: Path
) -> None:
    """When .tmp/ is replaced by a symlink out, clean-up refuses and the files there survive."""
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "old.txt").write_text("keep me")
    age(victims / "old.txt", 30 * DAY)
    (storage.root / ".tmp").rmdir()
    (storage.root / ".tmp").symlink_to(victims)
    with pytest.raises(OutsideRootError, match=r"\.tmp"):
        await clean_temp(storage, older_than_hours=0)
    assert (victims / "old.txt").read_text() == "keep me"
    with pytest.raises(OutsideRootError, match=r"\.tmp"):
        await open_storage(storage.root)


async def test_a_backups_folder_swapped_for_a_symlink_is_refused(
    storage: Storage, tmp_path: Path
) -> None:
    """When .backups/ or a folder in it leads out, backing up and pruning refuse."""
    victims = tmp_path / "victims"
    victims.mkdir()
    (victims / "a.txt.20200101T000000000000Z.bak").write_text("keep me")
    await write_text(storage, "a.txt", "a")
    await write_text(storage, "sub/a.txt", "a")
    (storage.root / ".backups/sub").symlink_to(victims)
    for operation in (backup, list_backups, lambda s, p: prune_backups(s, p, keep=0)):
        with pytest.raises(OutsideRootError, match="backups"):
            await operation(storage, "sub/a.txt")
    (storage.root / ".backups/sub").unlink()
    (storage.root / ".backups").rmdir()
    (storage.root / ".backups").symlink_to(victims)
    for operation in (backup, list_backups, lambda s, p: prune_backups(s, p, keep=0)):
        with pytest.raises(OutsideRootError, match="backups"):
            await operation(storage, "a.txt")
    assert [path.name for path in victims.iterdir()] == ["a.txt.20200101T000000000000Z.bak"]
    assert (victims / "a.txt.20200101T000000000000Z.bak").read_text() == "keep me"
