"""Zeek's ``conn_state`` as a pure function of the ``history`` string and the protocol.

Zeek derives ``conn_state`` from the two TCP endpoints' states (inactive, partial, SYN sent, SYN-ACK sent,
established, closed, reset) at the end of the connection. Those states are driven by the packets'
control flags, and every packet that can move an endpoint's state leaves a history letter, so this
module replays the history letters through the endpoint state machine of Zeek's TCP analyzer and then
applies Zeek's decision order (``base/protocols/conn/main.zeek``, function ``conn_state``):

1. responder reset: ``REJ`` if the originator was still in SYN(-ACK)-sent, or both reset with no payload;
   else ``RSTRH`` if the originator was inactive, else ``RSTR``;
2. originator reset: responder inactive -> ``RSTOS0`` if the history matches ``^?S[^HAFGIQ]*R``,
   else ``OTH``; responder active -> ``RSTO``;
3. both closed -> ``SF``; originator closed -> ``SH``/``S2``; responder closed -> ``SHR``/``S3``;
4. SYN sent and responder inactive -> ``S0``; both established -> ``S1``; else ``OTH``.

UDP (history ``D``/``d`` when that side sent a packet): both sides -> ``SF``, only the originator -> ``S0``,
only the responder -> ``SHR``. Every other
protocol, ICMP included -> ``OTH``.

Letters replayed (upper case = originator): ``S`` SYN, ``H`` SYN-ACK, ``A`` pure ACK, ``D`` data, ``F`` FIN,
``R`` RST, ``I`` FIN+RST, ``Q`` SYN with FIN or RST (replayed as SYN+FIN, the scan case). ``^ t w c g``
do not move endpoint states. Because ``A``/``D`` are logged once per direction, the replay sees only
the first pure ACK/data packet of each side; later ones never change an endpoint state in Zeek except
from *inactive*, which the replay handles the same way for every case that decides ``conn_state``.
"""

from __future__ import annotations

import re
from enum import IntEnum
from functools import lru_cache

import numpy as np

_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


class Ep(IntEnum):
    """A TCP endpoint's state, as Zeek names them (``TCP_ENDPOINT_*``)."""

    INACTIVE = 0
    SYN_SENT = 1
    SYN_ACK_SENT = 2
    PARTIAL = 3
    ESTABLISHED = 4
    CLOSED = 5
    RESET = 6


_INACTIVE = (Ep.INACTIVE, Ep.PARTIAL)

# letter (upper case) -> (syn, ack, fin, rst, has_data)
_FLAGS: dict[str, tuple[bool, bool, bool, bool, bool]] = {
    "S": (True, False, False, False, False),
    "H": (True, True, False, False, False),
    "A": (False, True, False, False, False),
    "D": (False, True, False, False, True),
    "F": (False, True, True, False, False),
    "R": (False, False, False, True, False),
    "I": (False, True, True, True, False),
    "Q": (True, False, True, False, False),
}


def endpoint_states(history: str) -> tuple[Ep, Ep]:
    """Replay ``history`` through Zeek's TCP endpoint state machine; return (originator, responder) states."""
    state = [Ep.INACTIVE, Ep.INACTIVE]  # [orig, resp]
    prev = [Ep.INACTIVE, Ep.INACTIVE]

    def set_state(i: int, s: Ep) -> None:
        prev[i] = state[i]
        state[i] = s

    for ch in history:
        flags = _FLAGS.get(ch.upper())
        if flags is None:
            continue  # ^ t w c g: no state change
        syn, ack, fin, rst, data = flags
        me = 0 if ch.isupper() else 1
        peer = 1 - me
        st = state[me]
        if st == Ep.INACTIVE:
            if syn:
                if me == 0:
                    set_state(me, Ep.SYN_ACK_SENT if ack else Ep.SYN_SENT)
                else:
                    if not ack and state[peer] == Ep.SYN_ACK_SENT:
                        set_state(peer, Ep.ESTABLISHED)  # SYN/SYN-ACK reversal
                    if state[peer] == Ep.SYN_SENT:
                        set_state(peer, Ep.ESTABLISHED)
                    set_state(me, Ep.ESTABLISHED)
            if fin:
                set_state(me, Ep.CLOSED)
            if rst:
                set_state(me, Ep.RESET)
            if state[me] == Ep.INACTIVE:
                if me == 1 and not data and state[0] == Ep.SYN_SENT:
                    pass  # an early ACK of the SYN does not make a partial connection
                elif ack and state[peer] == Ep.ESTABLISHED:
                    set_state(me, Ep.ESTABLISHED)  # SYN missed, SYN-ACK seen: establish
                else:
                    set_state(me, Ep.PARTIAL)
        elif st in (Ep.SYN_SENT, Ep.SYN_ACK_SENT):
            if fin:
                set_state(me, Ep.CLOSED)
            if rst:
                set_state(me, Ep.RESET)
        elif st in (Ep.ESTABLISHED, Ep.PARTIAL):
            if syn and st == Ep.PARTIAL and state[peer] == Ep.INACTIVE and not ack:
                set_state(me, Ep.SYN_SENT)
            if fin and not rst:
                set_state(me, Ep.CLOSED)
                if state[peer] == Ep.RESET and prev[peer] == Ep.CLOSED:
                    set_state(peer, Ep.CLOSED)  # FIN then RST from the peer was a normal close
            if rst:
                set_state(me, Ep.RESET)
        elif st == Ep.CLOSED and rst and state[peer] != Ep.CLOSED:
            set_state(me, Ep.RESET)
        # RESET: nothing moves a reset endpoint.
    return state[0], state[1]


@lru_cache(maxsize=65536)
def conn_state(history: str, proto: int) -> str:
    """Zeek's ``conn_state`` for a flow with this history and IP protocol (6 TCP, 17 UDP, others)."""
    if proto == 17:
        o = "D" in history  # UDP history: D/d once per side that sent a packet
        r = "d" in history
        if o:
            return "SF" if r else "S0"
        return "SHR" if r else "OTH"
    if proto != 6:
        return "OTH"
    os_, rs = endpoint_states(history)
    o_inactive = os_ in _INACTIVE
    r_inactive = rs in _INACTIVE
    if rs == Ep.RESET:
        no_payload = "D" not in history and "d" not in history
        if os_ in (Ep.SYN_SENT, Ep.SYN_ACK_SENT) or (os_ == Ep.RESET and no_payload):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == Ep.RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.fullmatch(history) else "OTH"
        return "RSTO"
    if rs == Ep.CLOSED and os_ == Ep.CLOSED:
        return "SF"
    if os_ == Ep.CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == Ep.CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == Ep.SYN_SENT and rs == Ep.INACTIVE:
        return "S0"
    if os_ == Ep.ESTABLISHED and rs == Ep.ESTABLISHED:
        return "S1"
    return "OTH"


# ---------------------------------------------------------------- vectorised history letters

# Main letter of a packet, by class code (0 = none). S and H share Zeek's SYN mask; the repeat rules
# compare the sequence number with the previous packet of the same mask.
LETTERS = np.frombuffer(b"\0SHADFRIQ", np.uint8)
_MASK_BIT = np.array([0, 1, 1, 2, 4, 8, 16, 32, 64], np.int64)  # class -> "seen" bit (S and H share bit 1)
SYN_BIT, FIN_BIT, RST_BIT = 1, 8, 16
_FIN, _SYN, _RST, _ACK, _URG = 0x01, 0x02, 0x04, 0x10, 0x20


def packet_class(flags: np.ndarray, plen: np.ndarray) -> np.ndarray:
    """Zeek's history class of each TCP packet (index into ``LETTERS``), as Zeek's ``update_history`` picks it."""
    f = flags.astype(np.int64)
    syn, fin, rst, ack = (f & _SYN) > 0, (f & _FIN) > 0, (f & _RST) > 0, (f & _ACK) > 0
    nbits = syn.astype(np.int8) + fin + rst
    cls = np.zeros(f.shape, np.int64)
    cls[(nbits == 0) & ack] = 3
    cls[(nbits == 0) & (plen > 0)] = 4
    one = nbits == 1
    cls[one & syn] = np.where(ack[one & syn], 2, 1)
    cls[one & fin] = 5
    cls[one & rst] = 6
    cls[(nbits > 1) & fin & rst] = 7
    cls[(nbits > 1) & ~(fin & rst)] = 8
    return cls
