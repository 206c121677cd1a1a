"""Academic honesty inside a graded submission's worker: banned libraries and the checker's
own files, refused by an audit hook the submission cannot remove.

``install(forbidden)`` runs in the worker (the child of the grader) before the
submission's module is loaded, and does three things for good in that process:

- a stand-in module answers ``import NAME`` for every forbidden NAME (``jax``, ``torch``,
  ``gradcheck``, ``reference``, ...). Importing it costs nothing; USING it (calling
  anything from it, computing with it, converting it to an array) raises
  ``BannedLibrary`` naming the library, so the tests whose calls use it fail;
- an audit hook (``sys.addaudithook``: there is no way to remove one) refuses to open
  any file in the folders of the forbidden packages (gradcheck's own folder with its
  oracles, ``reference/``, jax's, torch's, ...), to link to one, and to start another
  program (which would run without the hook). Taking the stand-in out of
  ``sys.meta_path`` therefore gets the submission nothing: the real package's files
  cannot be read;
- every import of a forbidden name, every use, every refused read is recorded, each
  once, as ``"imported:NAME"``, ``"used:NAME"`` or ``"read:PATH"`` (PATH relative to
  the folder it lies in); the worker sends that list with every answer and the grader
  (grade.mark) turns it into the honesty kinds of ``gradcheck.kinds``.

What it does not catch: code copied from the checker into the submission's own file
(``similarity`` flags a close copy of ``reference/`` for the instructor), answers
recomputed some other way, and code that reaches the operating system beneath Python
(the C library through ctypes, by other names than the ones refused here); the OS-level
isolation of ``gradcheck.isolation`` is what keeps those out where it is available.
"""
import importlib.abc
import importlib.machinery
import os
import sys
from typing import NamedTuple

__all__ = ["FORBIDDEN", "BannedLibrary", "install", "parse", "Record"]

# Top-level module names a graded submission may not import (``--allow-import NAME``
# lifts one). ``_gradcheck_reference`` is the private name the checker loads reference/ as.
FORBIDDEN = ("jax", "jaxlib", "torch", "tensorflow", "autograd", "gradcheck", "reference",
             "_gradcheck_reference")

_OWN = ("gradcheck", "reference", "_gradcheck_reference")     # the checker's own code
# C library functions that open files or start programs: looking them up through ctypes
# would pass beneath the audit hook's "open" event.
_LIBC_REFUSED = frozenset(("open", "open64", "openat", "openat64", "fopen", "fopen64",
                           "creat", "syscall", "system", "popen", "execve", "execv",
                           "execvp", "fork", "vfork", "posix_spawn", "posix_spawnp",
                           "dlopen", "name_to_handle_at", "open_by_handle_at"))
_SPAWN_EVENTS = frozenset(("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                           "os.spawn", "pty.spawn", "os.startfile"))


class BannedLibrary(RuntimeError):
    """Raised when a submission uses a library it may not use in a graded submission."""


def _folders(forbidden):
    """{folder + os.sep: library name} of the forbidden packages (found, not imported)."""
    here = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))     # gradcheck/
    found = {}
    if "gradcheck" in forbidden:
        found[here] = "gradcheck"
    if "reference" in forbidden or "_gradcheck_reference" in forbidden:
        found[os.path.join(os.path.dirname(here), "reference")] = "reference"
    for name in forbidden:
        if name in _OWN:
            continue
        try:
            spec = importlib.machinery.PathFinder.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        for where in (spec.submodule_search_locations or []) if spec else []:
            found[os.path.realpath(where)] = name
        if spec is not None and spec.origin and not spec.submodule_search_locations:
            found[os.path.realpath(spec.origin)] = name            # a one-file module
    return {(f + os.sep if os.path.isdir(f) else f): name for f, name in found.items()}


class _Entries:
    """The entries the worker reports, each once, in order (a list it sends as is)."""

    MOST_READS = 5          # a few paths name the attempt; the list must stay short

    def __init__(self):
        self.entries = []

    def add(self, what, name):
        entry = f"{what}:{name}"
        reads = sum(e.startswith("read:") for e in self.entries)
        if entry not in self.entries and (what != "read" or reads < self.MOST_READS):
            self.entries.append(entry)


def _banned_use(record, library, what):
    record.add("used", library)
    return BannedLibrary(f"{library} is not allowed in a graded submission: your code used "
                         f"{what}. Compute it with NumPy yourself.")


def _standin_class(record):
    """The class of the objects a stand-in module hands out: any use raises."""
    get = object.__getattribute__

    class BannedObject:
        def __init__(self, library, path):
            object.__setattr__(self, "_library", library)
            object.__setattr__(self, "_path", path)

        def __getattr__(self, name):
            if name.startswith("__"):        # a protocol (__array__, __iter__ ...): a use
                raise _banned_use(record, get(self, "_library"), get(self, "_path"))
            return BannedObject(get(self, "_library"), f"{get(self, '_path')}.{name}")

        def __repr__(self):
            return f"<{get(self, '_path')}: not allowed>"

    def refuse(self, *args, **kwargs):
        raise _banned_use(record, get(self, "_library"), get(self, "_path"))

    for dunder in ("call", "iter", "len", "bool", "float", "int", "index", "complex",
                   "getitem", "setitem", "contains", "enter", "neg", "pos", "abs",
                   "array", "array_ufunc", "array_function", "fspath"):
        setattr(BannedObject, f"__{dunder}__", refuse)
    for op in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "pow", "and",
               "or", "xor", "lshift", "rshift"):
        setattr(BannedObject, f"__{op}__", refuse)
        setattr(BannedObject, f"__r{op}__", refuse)
    for op in ("lt", "le", "gt", "ge"):
        setattr(BannedObject, f"__{op}__", refuse)
    return BannedObject


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """First on ``sys.meta_path``: a forbidden name (and its submodules) imports as a
    stand-in module whose attributes are stand-in objects."""

    def __init__(self, forbidden, record):
        self.forbidden, self.record = frozenset(forbidden), record
        self.standin = _standin_class(record)

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top not in self.forbidden:
            return None
        self.record.add("imported", _library(top))
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = type(sys)(spec.name)
        library = _library(spec.name.partition(".")[0])
        standin = self.standin

        def getattr_(name):
            if name.startswith("__"):
                raise AttributeError(name)
            return standin(library, f"{spec.name}.{name}")
        module.__getattr__ = getattr_
        return module

    def exec_module(self, module):
        module.__path__ = []


def _library(name):
    return "reference" if name == "_gradcheck_reference" else name


def _audit_hook(folders, record):
    """The hook: refuses reads of ``folders`` (and links to them), the C library's file
    functions through ctypes, and starting programs."""
    prefixes = tuple(folders)
    realpath, fsdecode, getframe = os.path.realpath, os.fsdecode, sys._getframe
    linecache_file = os.path.join(os.path.dirname(os.__file__), "linecache.py")

    def which(path):
        if isinstance(path, int) or path is None:
            return None
        try:
            where = realpath(fsdecode(path))
        except (TypeError, ValueError, OSError):
            return None
        for prefix in prefixes:
            if where == prefix or where.startswith(prefix):
                return prefix, where
        return None

    def from_linecache():
        """An open by linecache (a traceback's source lines): refused, not recorded."""
        frame = getframe(2)
        for _ in range(4):
            if frame is None:
                return False
            if frame.f_code.co_filename == linecache_file:
                return True
            frame = frame.f_back
        return False

    def refuse_read(hit):
        prefix, where = hit
        library = folders[prefix]
        if library in _OWN:
            folder, name = os.path.split(where)
            if os.path.basename(folder) == "__pycache__":       # its compiled copy
                folder, name = os.path.dirname(folder), name.partition(".")[0] + ".py"
            shown = os.path.relpath(os.path.join(folder, name),
                                    os.path.dirname(prefix.rstrip(os.sep)))
            what = "read"
        else:
            shown, what = library, "used"
        if not from_linecache():
            record.add(what, shown)
        raise PermissionError(f"{shown}: reading the checker's files or a library that is "
                              f"not allowed is refused in a graded submission")

    def hook(event, args):
        if event == "open":
            hit = which(args[0])
            if hit is not None:
                refuse_read(hit)
        elif event in ("os.link", "os.symlink", "shutil.copyfile", "os.rename"):
            hit = which(args[0])
            if hit is not None:
                refuse_read(hit)
        elif event == "ctypes.dlsym":
            name = args[1] if len(args) > 1 else None
            if isinstance(name, str) and name in _LIBC_REFUSED:
                raise PermissionError(f"calling the C library's {name} through ctypes is "
                                      f"not allowed in a graded submission")
        elif event in _SPAWN_EVENTS:
            raise PermissionError("starting another program is not allowed in a graded "
                                  "submission")
    return hook


def install(forbidden):
    """From now on, in this process: stand-ins for ``forbidden`` names, and the audit hook
    (for good; see the module's docstring). Returns the record's list of entries.
    Modules of those names that are already loaded (the worker's own ``gradcheck``) are
    taken out of ``sys.modules`` so that ``import`` cannot find them there; the objects
    that hold them keep working."""
    record = _Entries()
    forbidden = tuple(forbidden)
    folders = _folders(forbidden)
    for name in list(sys.modules):
        if name.partition(".")[0] in forbidden:
            del sys.modules[name]
    sys.meta_path.insert(0, _StandInFinder(forbidden, record))
    sys.addaudithook(_audit_hook(folders, record))
    return record.entries


class Record(NamedTuple):
    """What the worker reported, parsed: library names ``imported`` and ``used``, and the
    checker's files it tried to ``read``; each in order."""
    imported: tuple = ()
    used: tuple = ()
    read: tuple = ()


def parse(entries):
    """The Record of the worker's entries (strings it sent: anything else is ignored)."""
    found = {"imported": [], "used": [], "read": []}
    for entry in entries:
        what, sep, name = str(entry).partition(":")
        if sep and what in found and name and name not in found[what]:
            found[what].append(name)
    return Record(*(tuple(found[k]) for k in ("imported", "used", "read")))
