// Between delivery's segments and the short_message PDUs of SMPP: the
// submit_sm body for one segment (addresses with the SMSC's TON/NPI, UDH
// flag, validity left, data_coding and text as the SMSC wants them) and the
// UTF-8 text of a handset's deliver_sm. Pure functions of their arguments.
// Buffers: the PDU and the text returned are the caller's; nothing is kept.
#pragma once

#include <cstdint>
#include <string>

#include "postino/config.h"
#include "postino/smpp.h"
#include "segment.h"

namespace postino::delivery {

// The submit_sm for `seg` to an SMSC configured as `smsc`, at wall-clock
// time `now_unix_ms` (the validity period is what is left of the message's).
smpp::short_message_pdu submit_pdu(const smsc_config& smsc, const segment_ref& seg, std::uint64_t now_unix_ms);

// A handset message's text as UTF-8, read by its data_coding (GSM default
// alphabet, Latin-1, UCS-2; anything else as UTF-8 when valid, else
// Latin-1), its UDH (when esm_class says there is one) left out.
std::string inbound_text(const smpp::short_message_pdu& pdu);

}  // namespace postino::delivery
