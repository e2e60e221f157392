/* echo.c: client text made safe to quote in answers and logs. */
#include "echo.h"

char *echo_text(const char *s, size_t n, size_t max, char *out, size_t outlen) {
    if (outlen == 0)
        return out;
    size_t take = n > max ? max : n;
    size_t o = 0;
    for (size_t i = 0; i < take && o + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') ? '?' : (char)c;
    }
    if (take < n)
        for (int i = 0; i < 3 && o + 1 < outlen; i++)
            out[o++] = '.';
    out[o] = '\0';
    return out;
}
