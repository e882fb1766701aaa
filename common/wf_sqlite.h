/*
 * wf_sqlite.h - SQLite result codes as the project's error codes, for every component that
 * keeps state in SQLite (the store, the control plane). Header-only: it needs sqlite3.h's
 * constants, not the library.
 */
#ifndef WF_SQLITE_H
#define WF_SQLITE_H

#include "wf_err.h"

#include <errno.h>
#include <sqlite3.h>

/* 0 for OK/DONE/ROW; -ENOMEM, -ENOSPC, WF_E_CORRUPT, -EBUSY, -EACCES, else -EIO. */
static inline int wf_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return WF_E_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
        return -EACCES;
    default:
        return -EIO;
    }
}

#endif
