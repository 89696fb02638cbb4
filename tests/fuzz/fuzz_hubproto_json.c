/*
 * libFuzzer target: the SignalR hub protocol, JSON records (proto/hubproto.h).
 * The input is a client's byte stream: handshake, then 0x1E-terminated JSON messages; every
 * message also goes JSON -> MessagePack -> JSON. See fuzz_hubproto.h for what is checked.
 */
#include "tests/fuzz/fuzz_hubproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_hubproto(HS_HUB_JSON, data, size);
    return 0;
}
