/**
 * eBPF helper functions by name with their numbers (`enum bpf_func_id` of the kernel's uapi
 * linux/bpf.h, which numbers them in the order of `__BPF_FUNC_MAPPER`). Only numbers are needed at
 * load time: the verifier checks each call's arguments against the helper's prototype.
 */

/** Helper numbers by name (without the `bpf_` prefix). */
export const HELPERS = {
  map_lookup_elem: 1,
  map_update_elem: 2,
  map_delete_elem: 3,
  ktime_get_ns: 5,
  trace_printk: 6,
  get_prandom_u32: 7,
  get_smp_processor_id: 8,
  skb_store_bytes: 9,
  l3_csum_replace: 10,
  l4_csum_replace: 11,
  tail_call: 12,
  clone_redirect: 13,
  skb_vlan_push: 18,
  skb_vlan_pop: 19,
  skb_get_tunnel_key: 20,
  skb_set_tunnel_key: 21,
  redirect: 23,
  perf_event_output: 25,
  skb_load_bytes: 26,
  csum_diff: 28,
  skb_change_proto: 31,
  skb_change_type: 32,
  get_hash_recalc: 34,
  skb_change_tail: 38,
  skb_pull_data: 39,
  csum_update: 40,
  skb_change_head: 43,
  skb_adjust_room: 50,
  redirect_map: 51,
  fib_lookup: 69,
  skb_ecn_set_ce: 97,
  redirect_neigh: 152,
  redirect_peer: 155,
} as const;

/** A helper's name, as `Asm.call` takes it. */
export type HelperName = keyof typeof HELPERS;

const BY_NUMBER = new Map<number, string>(Object.entries(HELPERS).map(([k, v]) => [v, k]));

/** The name of helper number `n` ("redirect_peer"), or "helper#n". */
export function helperName(n: number): string {
  return BY_NUMBER.get(n) ?? `helper#${n}`;
}
