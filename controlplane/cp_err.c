/*
 * cp_err.c - names of the control plane's error codes (see cp_err.h).
 */
#include "cp_err.h"

#include "wf_err.h"

const char *cp_strerror(int code)
{
    switch (code) {
    case CP_E_SYNTAX:
        return "malformed YAML or JSON";
    case CP_E_LIMIT:
        return "input exceeds a limit";
    case CP_E_KIND:
        return "unknown kind or apiVersion";
    case CP_E_INVALID:
        return "invalid resource";
    case CP_E_UNSUPPORTED:
        return "unsupported feature";
    case CP_E_EXISTS:
        return "already exists";
    case CP_E_CONFLICT:
        return "resourceVersion conflict";
    default:
        return wf_strerror(code);
    }
}
