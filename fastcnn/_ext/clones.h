/* FC_CLONES: build a loop for AVX-512 (x86-64-v4), AVX2 and the baseline, and let the loader
 * pick one for the CPU it runs on (GCC target_clones). For the element-wise loops whose speed
 * comes from wide vectors, while the package itself is built for the baseline x86-64. */
#ifndef FASTCNN_CLONES_H
#define FASTCNN_CLONES_H

#if defined(__GNUC__) && __GNUC__ >= 11 && !defined(__clang__) && defined(__x86_64__)
#define FC_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define FC_CLONES
#endif

#endif
