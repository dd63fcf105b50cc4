/*
 * Force-included into llama.cpp's C/C++ build by scripts/build-env.js when ggml is compiled
 * with AMX and the compiler is GCC.
 *
 * GCC 12's _tile_loadconfig() (amxtileintrin.h) tells the optimizer that `ldtilecfg` reads only
 * 8 bytes of the 64-byte tile configuration, so the stores of the tile shapes (rows/colsb) are
 * removed as dead. ggml then loads an all-zero configuration and its first AMX instruction
 * raises SIGILL (seen on Sapphire/Emerald Rapids with ggml's Q4_1 AMX kernel). Clang is not
 * affected. This redefinition declares the whole 64 bytes as read.
 */
#if defined(__AMX_TILE__) && defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#undef _tile_loadconfig
#define _tile_loadconfig(config) \
  __asm__ volatile("ldtilecfg\t%X0" ::"m"(*(const unsigned char(*)[64])(config)))
#endif
