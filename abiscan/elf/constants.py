"""The ELF constants abiscan uses: one table, numbers taken from pyelftools' enums.

Numbers come from :mod:`elftools.elf.enums` so that abiscan and the library it
reads through cannot disagree. The display names (``x86_64``, ``aarch64``) are
abiscan's own vocabulary, the one its targets and messages use.
"""

from __future__ import annotations

from elftools.elf.enums import (
    ENUM_D_TAG_COMMON,
    ENUM_E_MACHINE,
    ENUM_E_TYPE,
    ENUM_EI_CLASS,
    ENUM_EI_DATA,
    ENUM_EI_OSABI,
    ENUM_P_TYPE_BASE,
    ENUM_SH_TYPE_BASE,
    ENUM_ST_INFO_BIND,
    ENUM_ST_VISIBILITY,
)

__all__ = [
    "CLASS_NAMES",
    "MACHINE_NAMES",
    "OSABI_NAMES",
    "TYPE_NAMES",
]

ELFCLASS32: int = ENUM_EI_CLASS["ELFCLASS32"]
ELFCLASS64: int = ENUM_EI_CLASS["ELFCLASS64"]
ELFDATA2LSB: int = ENUM_EI_DATA["ELFDATA2LSB"]
ELFDATA2MSB: int = ENUM_EI_DATA["ELFDATA2MSB"]

EM_S390: int = ENUM_E_MACHINE["EM_S390"]
# Alpha's unofficial number (not in pyelftools): its DT_HASH words are 8 bytes.
EM_ALPHA_UNOFFICIAL = 0x9026

SHT_NOBITS: int = ENUM_SH_TYPE_BASE["SHT_NOBITS"]
SHT_DYNAMIC: int = ENUM_SH_TYPE_BASE["SHT_DYNAMIC"]
SHT_DYNSYM: int = ENUM_SH_TYPE_BASE["SHT_DYNSYM"]
SHT_GNU_VERDEF: int = ENUM_SH_TYPE_BASE["SHT_GNU_verdef"]
SHT_GNU_VERNEED: int = ENUM_SH_TYPE_BASE["SHT_GNU_verneed"]

PT_LOAD: int = ENUM_P_TYPE_BASE["PT_LOAD"]
PT_DYNAMIC: int = ENUM_P_TYPE_BASE["PT_DYNAMIC"]
PF_X, PF_W, PF_R = 1, 2, 4  # p_flags bits (pyelftools keeps them in a class, not an enum)

DT_NULL: int = ENUM_D_TAG_COMMON["DT_NULL"]
DT_NEEDED: int = ENUM_D_TAG_COMMON["DT_NEEDED"]
DT_PLTRELSZ: int = ENUM_D_TAG_COMMON["DT_PLTRELSZ"]
DT_HASH: int = ENUM_D_TAG_COMMON["DT_HASH"]
DT_STRTAB: int = ENUM_D_TAG_COMMON["DT_STRTAB"]
DT_SYMTAB: int = ENUM_D_TAG_COMMON["DT_SYMTAB"]
DT_RELA: int = ENUM_D_TAG_COMMON["DT_RELA"]
DT_RELASZ: int = ENUM_D_TAG_COMMON["DT_RELASZ"]
DT_RELAENT: int = ENUM_D_TAG_COMMON["DT_RELAENT"]
DT_STRSZ: int = ENUM_D_TAG_COMMON["DT_STRSZ"]
DT_SYMENT: int = ENUM_D_TAG_COMMON["DT_SYMENT"]
DT_SONAME: int = ENUM_D_TAG_COMMON["DT_SONAME"]
DT_RPATH: int = ENUM_D_TAG_COMMON["DT_RPATH"]
DT_REL: int = ENUM_D_TAG_COMMON["DT_REL"]
DT_RELSZ: int = ENUM_D_TAG_COMMON["DT_RELSZ"]
DT_RELENT: int = ENUM_D_TAG_COMMON["DT_RELENT"]
DT_PLTREL: int = ENUM_D_TAG_COMMON["DT_PLTREL"]
DT_JMPREL: int = ENUM_D_TAG_COMMON["DT_JMPREL"]
DT_RUNPATH: int = ENUM_D_TAG_COMMON["DT_RUNPATH"]
DT_GNU_HASH: int = ENUM_D_TAG_COMMON["DT_GNU_HASH"]
DT_VERSYM: int = ENUM_D_TAG_COMMON["DT_VERSYM"]
DT_VERDEF: int = ENUM_D_TAG_COMMON["DT_VERDEF"]
DT_VERDEFNUM: int = ENUM_D_TAG_COMMON["DT_VERDEFNUM"]
DT_VERNEED: int = ENUM_D_TAG_COMMON["DT_VERNEED"]
DT_VERNEEDNUM: int = ENUM_D_TAG_COMMON["DT_VERNEEDNUM"]

STB_LOCAL: int = ENUM_ST_INFO_BIND["STB_LOCAL"]
STB_GLOBAL: int = ENUM_ST_INFO_BIND["STB_GLOBAL"]
STB_WEAK: int = ENUM_ST_INFO_BIND["STB_WEAK"]
STB_GNU_UNIQUE: int = ENUM_ST_INFO_BIND["STB_LOOS"]  # GNU's name for STB_LOOS
STV_DEFAULT: int = ENUM_ST_VISIBILITY["STV_DEFAULT"]
STV_PROTECTED: int = ENUM_ST_VISIBILITY["STV_PROTECTED"]
SHN_UNDEF = 0

VER_FLG_BASE = 1

CLASS_NAMES = {0: "ELFCLASSNONE", ELFCLASS32: "ELFCLASS32", ELFCLASS64: "ELFCLASS64"}
TYPE_NAMES = {
    v: k
    for k, v in ENUM_E_TYPE.items()
    if k in ("ET_NONE", "ET_REL", "ET_EXEC", "ET_DYN", "ET_CORE")
}
# abiscan's names for the machines its targets and messages speak of.
MACHINE_NAMES = {
    ENUM_E_MACHINE["EM_SPARC"]: "sparc",
    ENUM_E_MACHINE["EM_386"]: "i386",
    ENUM_E_MACHINE["EM_MIPS"]: "mips",
    ENUM_E_MACHINE["EM_PPC"]: "ppc",
    ENUM_E_MACHINE["EM_PPC64"]: "ppc64",
    EM_S390: "s390",
    ENUM_E_MACHINE["EM_ARM"]: "arm",
    ENUM_E_MACHINE["EM_SH"]: "sh",
    ENUM_E_MACHINE["EM_SPARCV9"]: "sparcv9",
    ENUM_E_MACHINE["EM_IA_64"]: "ia64",
    ENUM_E_MACHINE["EM_X86_64"]: "x86_64",
    ENUM_E_MACHINE["EM_AARCH64"]: "aarch64",
    ENUM_E_MACHINE["EM_RISCV"]: "riscv",
    258: "loongarch",  # EM_LOONGARCH, not in every pyelftools release
}
OSABI_NAMES = {
    v: k
    for k, v in ENUM_EI_OSABI.items()
    if k
    in (
        "ELFOSABI_SYSV",
        "ELFOSABI_HPUX",
        "ELFOSABI_NETBSD",
        "ELFOSABI_LINUX",
        "ELFOSABI_SOLARIS",
        "ELFOSABI_FREEBSD",
        "ELFOSABI_OPENBSD",
        "ELFOSABI_ARM",
        "ELFOSABI_STANDALONE",
    )
}
OSABI_NAMES[3] = "ELFOSABI_GNU"  # pyelftools calls 3 ELFOSABI_LINUX; glibc says GNU
