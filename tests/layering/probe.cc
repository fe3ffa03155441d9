// A layering probe (tests/layering/check.cmake): compiled as part of one
// part's target with PROBE_HEADER naming a header of another part. It must
// compile only when DESIGN.md lets the first part use the second.
#include PROBE_HEADER
