/*
 * libFuzzer target: the SignalR hub protocol, MessagePack records (proto/hubproto.h).
 * The input is a client's byte stream: the JSON handshake ending in 0x1E, then length-prefixed
 * MessagePack messages (an input without 0x1E is all messages). The whole input and every
 * message also go MessagePack -> JSON -> MessagePack -> JSON. See fuzz_hubproto.h.
 */
#include "tests/fuzz/fuzz_hubproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_hubproto(HS_HUB_MSGPACK, data, size);
    return 0;
}
