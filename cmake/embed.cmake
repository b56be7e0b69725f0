# Embed a file into the binary as a C array (issue 11: /openapi.json).
# Usage: cmake -DIN=file -DOUT=generated.c -DNAME=symbol -P cmake/embed.cmake
# Defines NAME (the bytes, NUL-terminated beyond NAME_len), NAME_len and
# NAME_sha256 (lower-case hex, the served ETag). OUT is rewritten only when
# its content changes, so an unchanged input recompiles nothing.
file(READ "${IN}" hex HEX)
file(SHA256 "${IN}" sha)
file(SIZE "${IN}" size)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# One line per 32 bytes keeps the generated file readable in an editor.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
"/* Generated from ${IN} by cmake/embed.cmake; do not edit. */
#include <stddef.h>

extern const unsigned char ${NAME}[];
extern const size_t ${NAME}_len;
extern const char ${NAME}_sha256[];

const unsigned char ${NAME}[] = {
${bytes}0x00};
const size_t ${NAME}_len = ${size};
const char ${NAME}_sha256[] = \"${sha}\";
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
