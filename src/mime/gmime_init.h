// GMime's one initialisation per process, for every file of src/mime that
// calls GMime (internal to the part; defined in email.cc). g_mime_init is
// not safe to run twice at once, and the content workers (email.cc,
// structure.cc) and the checkpointer thread (parts.cc) may reach GMime
// first at the same moment: one std::call_once for all of them.
#pragma once

namespace postino::mime::detail {

void ensure_gmime();

}  // namespace postino::mime::detail
