// Each lab owns one /28 of 198.51.100.0/24 (TEST-NET-2) and one /64 of 2001:db8:100::/48, so
// labs of parallel test workers never share a link prefix. .16k is the network, .16k+15 the
// broadcast, .16k+1 the bridge: 13 host addresses remain.
export const SLOT_COUNT = 16;
export const V4_PREFIX_LEN = 28;
export const V6_PREFIX_LEN = 64;

export interface SlotAddressing {
  slot: number;
  prefixV4: string;
  prefixV6: string;
  gatewayV4: string;
  gatewayV6: string;
  hostV4(n: number): string;
  hostV6(n: number): string;
}

export function slotAddressing(slot: number): SlotAddressing {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) {
    throw new Error(`lab slot must be 0..${SLOT_COUNT - 1}, got ${slot}`);
  }
  const base = slot * 16;
  // canonical text (RFC 5952), as `ip` prints it: slot 0 is 2001:db8:100::/64
  const v6 = slot === 0 ? '2001:db8:100::' : `2001:db8:100:${slot.toString(16)}::`;
  return {
    slot,
    prefixV4: `198.51.100.${base}/${V4_PREFIX_LEN}`,
    prefixV6: `${v6}/${V6_PREFIX_LEN}`,
    gatewayV4: `198.51.100.${base + 1}`,
    gatewayV6: `${v6}1`,
    hostV4: (n) => `198.51.100.${base + 1 + n}`,
    hostV6: (n) => `${v6}${(n + 1).toString(16)}`,
  };
}
