"""Capture a target profile from a real interpreter and its system.

This file is the part of abiscan that runs *inside* the target: it uses only
the standard library, runs on CPython 3.8 and later, and imports nothing else
from abiscan, so it can be copied alone into a container::

    docker run --rm -v "$PWD":/w public.ecr.aws/lambda/python:3.12 \\
        python /w/capture.py > python3.12-x86_64.json

(``--entrypoint python`` may be needed where the image's entry point is the
Lambda runtime interface.) ``abiscan capture --python PATH`` runs it with
``PATH -I capture.py``. It prints a target profile (JSON) that
``abiscan scan --target FILE`` reads: the interpreter's version, ABI flags,
``EXTENSION_SUFFIXES`` and multiarch; the C library and its version; the
shared-library inventory the dynamic linker sees (``ldconfig -p`` or
``/etc/ld.so.cache``, the default directories, the directories of Lambda's
``LD_LIBRARY_PATH``), each library's class, machine, soname and symbol-version
definitions, read with the small ELF reader below; the libraries the
interpreter process has loaded at start-up and their exported symbols; the
C-API symbols libpython (or a static interpreter) exports; and the ld.so
flavour (Debian and Ubuntu patch it).

Layers and function code keep the Lambda layout in the profile (``/opt``,
``/var/task``, the runtime's ``sys.path`` and ``LD_LIBRARY_PATH``), whatever
machine the capture ran on: the profile answers "this interpreter and system,
deployed the way Lambda deploys".

Nothing is executed but ``ldconfig -p`` and ``ld.so --help`` (both only
print), and files are only read.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import platform
import re
import struct
import subprocess
import sys
import sysconfig
from typing import Any

CAPTURE_VERSION = 1
TARGET_SCHEMA_VERSION = 1

# Lambda's layout; abiscan's tests check these against abiscan.target.profiles.
LAMBDA_LD_LIBRARY_PATH = [
    "/var/lang/lib",
    "/lib64",
    "/usr/lib64",
    "/var/runtime",
    "/var/runtime/lib",
    "/var/task",
    "/var/task/lib",
    "/opt/lib",
]
LAMBDA_OWNED = ("/opt", "/var/task")

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
_MACHINES = {3: "i686", 40: "armv7l", 62: "x86_64", 183: "aarch64", 21: "ppc64le", 22: "s390x"}
# ldconfig -p's word for each architecture's 64-bit libraries.
_CACHE_FLAGS = {"x86_64": "x86-64", "aarch64": "AArch64"}
_LIB_NAME = re.compile(r"^(?:lib.*\.so(?:\.[0-9.]+)?|ld-.*\.so(?:\.[0-9.]+)?)$")
_MAX_LIBRARIES = 20000


def lambda_sys_path(major: int, minor: int) -> list[str]:
    """The Lambda runtime's sys.path for CPython major.minor (as target.profiles builds it)."""
    ver = f"{major}.{minor}"
    stdlib = [
        f"/var/lang/lib/python{major}{minor}.zip",
        "/var/lang/lib/python" + ver,
        f"/var/lang/lib/python{ver}/lib-dynload",
    ]
    site = f"/var/lang/lib/python{ver}/site-packages"
    head = ["/var/task", f"/opt/python/lib/python{ver}/site-packages", "/opt/python"]
    if (major, minor) < (3, 11):
        return [*head, "/var/runtime", *stdlib, site]
    return [*head, site, "/var/runtime", *stdlib]


# -- a small ELF reader (stdlib only) -----------------------------------------


class _Elf:
    """Reads what the loader needs from one ELF file, by seeking; never the whole file."""

    def __init__(self, f: Any, size: int) -> None:
        self.f = f
        self.size = size
        ident = self._read(0, 64)
        if (
            len(ident) < 52
            or ident[:4] != b"\x7fELF"
            or ident[4] not in (1, 2)
            or (ident[5] not in (1, 2))
        ):
            raise ValueError("not ELF")
        self.is64 = ident[4] == 2
        self.e = "<" if ident[5] == 1 else ">"
        if self.is64:
            (self.e_type, self.machine) = struct.unpack_from(self.e + "HH", ident, 16)
            self.phoff, self.shoff = struct.unpack_from(self.e + "QQ", ident, 32)
            self.phentsize, self.phnum, self.shentsize, self.shnum = struct.unpack_from(
                self.e + "HHHH", ident, 54
            )
        else:
            (self.e_type, self.machine) = struct.unpack_from(self.e + "HH", ident, 16)
            self.phoff, self.shoff = struct.unpack_from(self.e + "II", ident, 28)
            self.phentsize, self.phnum, self.shentsize, self.shnum = struct.unpack_from(
                self.e + "HHHH", ident, 42
            )
        self.bits = 64 if self.is64 else 32
        self.loads: list[tuple[int, int, int]] = []
        self.dynamic: tuple[int, int] | None = None
        self.interp: tuple[int, int] | None = None  # PT_INTERP: the dynamic linker's path
        for i in range(min(self.phnum, 256)):
            raw = self._read(self.phoff + i * self.phentsize, 56 if self.is64 else 32)
            if self.is64:
                p_type, _, off, vaddr, _, filesz = struct.unpack_from(self.e + "IIQQQQ", raw)
            else:
                p_type, off, vaddr, _, filesz = struct.unpack_from(self.e + "IIIII", raw)
            if p_type == 1:
                self.loads.append((vaddr, off, filesz))
            elif p_type == 2:
                self.dynamic = (off, filesz)
            elif p_type == 3:
                self.interp = (off, filesz)
        self.tags: dict[int, list[int]] = {}
        if self.dynamic is not None:
            off, size = self.dynamic
            raw = self._read(off, min(size, 1 << 20))
            fmt = self.e + ("qQ" if self.is64 else "iI")
            step = struct.calcsize(fmt)
            for pos in range(0, len(raw) - step + 1, step):
                tag, val = struct.unpack_from(fmt, raw, pos)
                if tag == 0:
                    break
                self.tags.setdefault(tag & 0xFFFFFFFF if tag < 0 else tag, []).append(val)

    def _read(self, off: int, size: int) -> bytes:
        if off < 0 or size < 0 or off + size > self.size:
            raise ValueError("truncated")
        self.f.seek(off)
        return bytes(self.f.read(size))

    def _offset(self, addr: int) -> int:
        for vaddr, off, filesz in self.loads:
            if vaddr <= addr < vaddr + filesz:
                return off + addr - vaddr
        raise ValueError("address outside the file")

    def _strtab(self) -> bytes:
        addr = self.tags.get(5, [None])[0]
        size = self.tags.get(10, [0])[0]
        if addr is None:
            return b""
        return self._read(self._offset(addr), min(size, 64 << 20))

    @staticmethod
    def _str(tab: bytes, off: int) -> str:
        end = tab.find(b"\0", off)
        return tab[off : end if end >= 0 else len(tab)].decode("utf-8", "surrogateescape")

    def soname(self) -> str | None:
        if 14 not in self.tags:
            return None
        return self._str(self._strtab(), self.tags[14][0])

    def rpath(self) -> list[str]:
        if 15 not in self.tags:
            return []
        return self._str(self._strtab(), self.tags[15][0]).split(":")

    def version_defs(self) -> list[str]:
        if 0x6FFFFFFC not in self.tags:
            return []
        tab = self._strtab()
        off = self._offset(self.tags[0x6FFFFFFC][0])
        count = self.tags.get(0x6FFFFFFD, [0])[0]
        out = []
        for _ in range(min(count, 4096)):
            _, flags, _, cnt, _, aux, nxt = struct.unpack(self.e + "HHHHIII", self._read(off, 20))
            if cnt and not flags & 1:
                (name,) = struct.unpack(self.e + "I", self._read(off + aux, 4))
                out.append(self._str(tab, name))
            if nxt == 0:
                break
            off += nxt
        return out

    def exports(self) -> list[str]:
        """Defined GLOBAL/WEAK dynamic symbols of default or protected visibility."""
        if not self.shoff or not self.shnum:
            return []
        sections = []
        for i in range(min(self.shnum, 65535)):
            raw = self._read(self.shoff + i * self.shentsize, 64 if self.is64 else 40)
            if self.is64:
                fields = struct.unpack(self.e + "IIQQQQIIQQ", raw)
            else:
                fields = struct.unpack(self.e + "IIIIIIIIII", raw)
            _, sh_type, _, _, off, size, link, _, _, ent = fields
            sections.append((sh_type, off, size, link, ent))
        dynsym = next((s for s in sections if s[0] == 11), None)
        if dynsym is None or dynsym[3] >= len(sections):
            return []
        _, off, size, link, ent = dynsym
        tab = self._read(sections[link][1], sections[link][2])
        raw = self._read(off, size)
        ent = ent or (24 if self.is64 else 16)
        out = []
        for pos in range(ent, len(raw) - ent + 1, ent):
            if self.is64:
                name, info, other, shndx = struct.unpack_from(self.e + "IBBH", raw, pos)
            else:
                name, _, _, info, other, shndx = struct.unpack_from(self.e + "IIIBBH", raw, pos)
            if shndx == 0 or info >> 4 not in (1, 2, 10) or other & 3 not in (0, 3):
                continue
            out.append(self._str(tab, name))
        return sorted(set(out))


def _elf(path: str) -> _Elf | None:
    try:
        f = open(path, "rb")  # noqa: SIM115 - the _Elf keeps it open; _describe closes it
    except OSError:
        return None
    try:
        size = os.fstat(f.fileno()).st_size
        return _Elf(f, size)
    except (OSError, ValueError, struct.error):
        f.close()
        return None


def _describe(path: str, want_exports: bool = False) -> dict[str, Any] | None:
    elf = _elf(path)
    if elf is None:
        return None
    try:
        # ET_DYN libraries; the interpreter itself may be ET_EXEC (a non-PIE build
        # with libpython linked in, as Debian's), and still exports the C API.
        if elf.e_type != 3 and not (want_exports and elf.e_type == 2):
            return None
        # Kept small: a system has thousands of libraries, and what is left
        # out takes the profile reader's defaults (no versions, certain).
        out: dict[str, Any] = {
            "path": path,
            "soname": elf.soname(),
            "bits": elf.bits,
            "machine": _MACHINES.get(elf.machine, f"EM_{elf.machine}"),
        }
        defs = elf.version_defs()
        if defs:
            out["version_defs"] = defs
        if want_exports:
            out["exports"] = elf.exports()
        return out
    except (OSError, ValueError, struct.error):
        return None
    finally:
        elf.f.close()


# -- the system ---------------------------------------------------------------


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=60,
            check=False,
            text=True,
            env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "")},
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _ldconfig_cache(arch: str) -> list[tuple[str, str]]:
    """(name, path) entries of /etc/ld.so.cache for this architecture, in cache order."""
    word = _CACHE_FLAGS.get(arch, arch)
    for exe in ("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"):
        text = _run([exe, "-p"])
        if text:
            break
    else:
        return _parse_cache_file("/etc/ld.so.cache", arch)
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s+(\S+) \(([^)]*)\) => (\S+)$", line)
        if m and word in m.group(2).split(","):
            out.append((m.group(1), m.group(3)))
    return out


def _parse_cache_file(path: str, arch: str) -> list[tuple[str, str]]:
    """The new (glibc 2.32+ only) format of ld.so.cache, for systems without ldconfig."""
    want = {"x86_64": 0x0300, "aarch64": 0x0A00}.get(arch)
    try:
        with open(path, "rb") as f:
            data = f.read(64 << 20)
    except OSError:
        return []
    magic = b"glibc-ld.so.cache1.1"
    start = data.find(magic)
    if start < 0 or want is None:
        return []
    nlibs, _ = struct.unpack_from("<II", data, start + 20)
    out = []
    base = start + 48
    for i in range(min(nlibs, 100000)):
        flags, key, value, _, _ = struct.unpack_from("<iIIIQ", data, base + i * 24)
        if flags & 0xFF00 != want:
            continue
        name = data[start + key : data.index(b"\0", start + key)].decode()
        where = data[start + value : data.index(b"\0", start + value)].decode()
        out.append((name, where))
    return out


def _default_dirs(arch: str, flavor: str, multiarch: str) -> list[str]:
    """The dynamic linker's system search path (``ld.so --help`` on glibc 2.33+)."""
    interp = _interpreter_path()
    if interp:
        text = _run([interp, "--help"])
        dirs = re.findall(r"^\s+(/\S*) \(system search path\)$", text, re.MULTILINE)
        if dirs:
            return dirs
    if flavor == "debian" and multiarch:
        return ["/lib/" + multiarch, "/usr/lib/" + multiarch, "/lib", "/usr/lib"]
    return ["/lib64", "/usr/lib64"] if arch in ("x86_64", "aarch64") else ["/lib", "/usr/lib"]


def _interpreter_path() -> str | None:
    """PT_INTERP of the running interpreter: the dynamic linker's path."""
    try:
        with open(sys.executable, "rb") as f:
            elf = _Elf(f, os.fstat(f.fileno()).st_size)
            if elf.interp is None:
                return None
            off, size = elf.interp
            return elf._read(off, size).rstrip(b"\0").decode()
    except (OSError, ValueError, struct.error):
        return None


def _dir_links(dirs: list[str]) -> list[list[str]]:
    """Directory symlinks on the way to each directory: [link, resolved target]."""
    seen: dict[str, str] = {}
    for d in dirs:
        parts = d.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/" + "/".join(parts[:i])
            if prefix not in seen and os.path.islink(prefix) and os.path.isdir(prefix):
                seen[prefix] = os.path.realpath(prefix)
    return [[k, v] for k, v in sorted(seen.items())]


def _os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        out[key] = value.strip().strip('"')
            return out
        except OSError:
            continue
    return out


def _startup_objects() -> list[str]:
    """Shared objects mapped in this process, except Python's own extension modules."""
    out: list[str] = []
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) < 6:
                    continue
                path = parts[5].strip()
                if not path.startswith("/") or path in out:
                    continue
                if "lib-dynload" in path or (path.endswith(suffixes) and "libpython" not in path):
                    continue
                if os.path.realpath(path) == os.path.realpath(sys.executable):
                    continue
                out.append(path)
    except OSError:
        pass
    return out


def _libraries(dirs: list[str], cache: list[tuple[str, str]]) -> list[dict[str, Any]]:
    paths: list[str] = []
    seen = set()
    for _, path in cache:
        if path not in seen:
            seen.add(path)
            paths.append(path)
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            path = os.path.join(d, name)
            if path in seen or not _LIB_NAME.match(name) or not os.path.isfile(path):
                continue
            seen.add(path)
            paths.append(path)
    out = []
    for path in paths[:_MAX_LIBRARIES]:
        info = _describe(path)
        if info is not None:
            out.append(info)
    return out


# Long on purpose: this file runs as a script inside the target interpreter
# (stdlib only, any CPython 3.x); it reads top to bottom like the facts it prints.
def capture() -> dict[str, Any]:
    """The target profile of this interpreter and system."""
    startup = _startup_objects()
    major, minor = sys.version_info[:2]
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    multiarch = sysconfig.get_config_var("MULTIARCH") or f"{arch}-linux-gnu"
    abiflags = getattr(sys, "abiflags", "") or (sysconfig.get_config_var("ABIFLAGS") or "")
    gil_disabled = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    if gil_disabled and "t" not in abiflags:
        abiflags += "t"
    libc, libc_version = "glibc", ""
    try:
        words = os.confstr("CS_GNU_LIBC_VERSION") or ""
        if words.startswith("glibc "):
            libc_version = words.split()[1]
    except (ValueError, OSError, AttributeError):
        pass
    if not libc_version:
        name, version = platform.libc_ver()
        libc, libc_version = (name or "unknown"), version or "0.0"
    release = _os_release()
    like = (release.get("ID", "") + " " + release.get("ID_LIKE", "")).split()
    flavor = "debian" if ("debian" in like or "ubuntu" in like) else "upstream"
    cache = _ldconfig_cache(arch)
    default_dirs = _default_dirs(arch, flavor, multiarch)
    env_path = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    system_dirs = [
        d
        for d in default_dirs + LAMBDA_LD_LIBRARY_PATH + env_path + [libdir]
        if d and not d.startswith(LAMBDA_OWNED)
    ]
    system_dirs = list(dict.fromkeys(system_dirs))
    libraries = _libraries(system_dirs, cache)
    by_path = {lib["path"]: lib for lib in libraries}

    preloaded: list[str] = []
    capi_source = None
    for path in startup:
        info = _describe(path, want_exports=True)
        if info is None:
            continue
        name = info["soname"] or os.path.basename(path)
        preloaded.append(name)
        entry = by_path.get(path)
        if entry is None:
            libraries.append(info)
            by_path[path] = info
        else:
            entry["exports"] = info["exports"]
        if name.startswith("libpython"):
            capi_source = info
    # The same file under other names (a link in another directory) is the
    # same loaded object: give every name its exports.
    loaded_exports = {
        os.path.realpath(lib["path"]): lib["exports"] for lib in libraries if "exports" in lib
    }
    for lib in libraries:
        if "exports" not in lib:
            found = loaded_exports.get(os.path.realpath(lib["path"]))
            if found is not None:
                lib["exports"] = found
    if capi_source is None:
        # A statically linked interpreter exports the C API itself.
        capi_source = _describe(sys.executable, want_exports=True) or {"exports": []}
        for lib in libraries:
            lib.pop("exports", None) if lib.get("soname", "").startswith("libpython") else None
    exe = _elf(sys.executable)
    exe_rpath: list[str] = []
    if exe is not None:
        try:
            if 29 not in exe.tags:  # DT_RPATH counts only without DT_RUNPATH
                exe_rpath = exe.rpath()
        except (OSError, ValueError, struct.error):
            pass
        finally:
            exe.f.close()

    where = release.get("PRETTY_NAME") or platform.platform()
    version_text = ".".join(str(v) for v in sys.version_info[:3])
    lib_token = "lib/" + multiarch if flavor == "debian" else "lib64"
    system: dict[str, Any] = {
        "name": f"{where} ({arch}, captured)",
        "complete": True,
        "absent_confidence": "certain",
        "default_dirs": default_dirs,
        "dir_links": _dir_links(system_dirs + [os.path.dirname(p) for _, p in cache]),
        "cache": [list(entry) for entry in cache],
        "preloaded": preloaded,
        "executable_rpath": exe_rpath,
        "lib_token": lib_token,
        "platform_token": arch,
        "libraries": libraries,
        "absent": [],
        "sources": [f"captured by abiscan capture.py from {sys.executable}"],
        "notes": [],
    }
    capi: dict[str, Any] | None = {
        "version": f"{major}.{minor}",
        "certainty": "certain",
        "provenance": "exports of {}, CPython {} (captured)".format(
            capi_source.get("path", sys.executable), version_text
        ),
        "symbols": capi_source.get("exports", []),
    }
    if "PyObject_GetAttr" not in capi_source.get("exports", []):
        # A static, non-exporting interpreter (or an unreadable one): an empty list
        # would claim, with certainty, that no C-API function exists.
        notes: list[str] = system["notes"]
        notes.append(
            "the interpreter's C-API exports could not be read; abiscan's built-in "
            "data for this version is used instead"
        )
        capi = None
    tag = "t" if gil_disabled else ""
    return {
        "schema_version": TARGET_SCHEMA_VERSION,
        "capture_version": CAPTURE_VERSION,
        "name": f"captured-{major}.{minor}{tag}-{arch}",
        "python_version": f"{major}.{minor}",
        "implementation": sys.implementation.name,
        "abiflags": abiflags,
        "arch": arch,
        "multiarch": multiarch,
        "extension_suffixes": list(importlib.machinery.EXTENSION_SUFFIXES),
        "sys_path": lambda_sys_path(major, minor),
        "ld_library_path": list(LAMBDA_LD_LIBRARY_PATH),
        "libc": libc,
        "libc_version": libc_version,
        "os_name": where,
        "ld_so_flavor": flavor,
        "runtime": None,
        "layer_root": "/opt",
        "function_root": "/var/task",
        "site_packages": f"/opt/python/lib/python{major}.{minor}/site-packages",
        "sources": [
            f"captured from {sys.executable} (CPython {version_text}, "
            f"{libc} {libc_version}) on {where}",
        ],
        "notes": [
            "layers and function code keep the Lambda layout (/opt, /var/task, the runtime's "
            "sys.path and LD_LIBRARY_PATH); the interpreter and system libraries are the "
            "captured ones",
            "captured sys.path: {}".format(":".join(p for p in sys.path if p)),
            "captured LD_LIBRARY_PATH: %s" % (os.environ.get("LD_LIBRARY_PATH") or "(unset)"),
        ],
        "os_id": "",
        "system": system,
        "capi": capi,
    }


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out_path = None
    if args[:1] == ["-o"] and len(args) == 2:
        out_path = args[1]
    elif args:
        sys.stderr.write("usage: python capture.py [-o FILE]\n")
        return 2
    text = json.dumps(capture(), indent=0, sort_keys=True) + "\n"
    if out_path:
        with open(out_path, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
