/*
 * reqhdr.c: owns copying request headers and query arguments out of lws
 * into heap strings (see reqhdr.h).
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "reqhdr.h"

#include <stdlib.h>
#include <string.h>

char *reqhdr_get(struct lws *wsi, enum lws_token_indexes h)
{
    int len = lws_hdr_total_length(wsi, h);
    char *v;

    if (len <= 0)
        return NULL;
    v = malloc((size_t)len + 1);
    if (v && lws_hdr_copy(wsi, v, len + 1, h) < 0) {
        free(v);
        v = NULL;
    }
    return v;
}

char *reqhdr_custom(struct lws *wsi, const char *name)
{
    int nl = (int)strlen(name), len = lws_hdr_custom_length(wsi, name, nl);
    char *v;

    if (len < 0)
        return NULL;
    v = malloc((size_t)len + 1);
    if (v && lws_hdr_custom_copy(wsi, v, len + 1, name, nl) < 0) {
        free(v);
        v = NULL;
    }
    return v;
}

int reqhdr_query_arg(struct lws *wsi, const char *name, char **out)
{
    size_t nl = strlen(name);
    int i, len, found = 0;
    char *frag;

    *out = NULL;
    for (i = 0; (len = lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i)) > 0; i++) {
        frag = malloc((size_t)len + 1);
        if (!frag || lws_hdr_copy_fragment(wsi, frag, len + 1, WSI_TOKEN_HTTP_URI_ARGS, i) < 0) {
            free(frag);
            goto bad;
        }
        if ((size_t)len > nl && !strncmp(frag, name, nl) && frag[nl] == '=') {
            if (found++) {
                free(frag);
                goto bad;                   /* the same argument twice */
            }
            *out = strdup(frag + nl + 1);
            if (!*out) {
                free(frag);
                goto bad;
            }
        }
        free(frag);
    }
    return found;
bad:
    free(*out);
    *out = NULL;
    return -1;
}
