package sqlite

/*
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
// keepHeap raises glibc's trim threshold: by default a thread's arena gives
// memory back to the kernel (madvise) as soon as 128 KiB are free at its
// top, which SQLite's page cache and statement journals reach on nearly
// every transaction, and takes it back page fault by page fault on the
// next one. Profiling a 40,000-job drain put that churn at about a quarter
// of hookbay's CPU; with the threshold at 64 MiB it was gone.
static void keepHeap(void) { mallopt(M_TRIM_THRESHOLD, 64 << 20); }
#else
static void keepHeap(void) {}
#endif
*/
import "C"

func init() { C.keepHeap() }
