import { describe, expect, test } from "bun:test";
import { nla } from "../../../src/netlink/attr.ts";
import { fromHex, toHex } from "../../../src/netlink/bytes.ts";
import {
  decodeTc,
  encodeFilter,
  encodeQdisc,
  encodeTc,
  ETH_P_ALL,
  filterInfo,
  formatHandle,
  parsePsched,
  splitFilterInfo,
  TC_ACT_STOLEN,
  TC_H_INGRESS,
  TC_H_ROOT,
  TCA_EGRESS_REDIR,
  TCA_KIND,
  TCA_OPTIONS,
  TCA_TBF_PARMS,
  tcHandle,
  tick2time,
  time2tick,
} from "../../../src/netlink/tc.ts";
import { ifbName, parseBandwidth, tbfFor } from "../../../src/plugins/meta/bandwidth.ts";
import { CniError } from "../../../src/spec/error.ts";

const hex = (...parts: string[]) => parts.join("");
// struct tcmsg (include/uapi/linux/rtnetlink.h): u8 family, u8 pad1, u16 pad2, int ifindex,
// u32 handle, u32 parent, u32 info. Little-endian host assumed (as the other fixtures).
const tcmsg = (ifindex: string, handle: string, parent: string, info = "00000000") =>
  hex("00", "00", "0000", ifindex, handle, parent, info);
// struct tc_ratespec: u8 cell_log, u8 linklayer, u16 overhead, s16 cell_align, u16 mpu, u32 rate.
const ratespec = (linklayer: string, rate: string) => hex("00", linklayer, "0000", "0000", "0000", rate);
// struct tc_mirred: tc_gen (u32 index, u32 capab, int action, int refcnt, int bindcnt), int eaction, u32 ifindex.
const mirredParms = (action: string, eaction: string, ifindex: string) =>
  hex("00000000", "00000000", action, "00000000", "00000000", eaction, ifindex);
const mirredAction = (ifindex: string) =>
  hex(
    "3400", "0100", //                         action 1, 52 bytes
    "0b00", "0100", "6d697272656400", "00", //   TCA_ACT_KIND "mirred"
    "2400", "0200", //                           TCA_ACT_OPTIONS, 36 bytes
    "2000", "0200", mirredParms("04000000", "01000000", ifindex), // TCA_MIRRED_PARMS: stolen, egress redirect
  );

describe("handles and tcm_info", () => {
  test("major:minor and tc's notation", () => {
    expect(tcHandle(1, 0)).toBe(0x00010000);
    expect(tcHandle(0xffff, 0)).toBe(0xffff0000);
    expect(formatHandle(tcHandle(1, 1))).toBe("1:1");
    expect(formatHandle(tcHandle(0xffff, 0))).toBe("ffff:");
    expect(formatHandle(TC_H_ROOT)).toBe("root");
  });
  test("filter info: prio in the high half, protocol in network order", () => {
    expect(filterInfo(1, ETH_P_ALL)).toBe(0x00010300);
    expect(splitFilterInfo(0x00010300)).toEqual({ prio: 1, protocol: ETH_P_ALL });
    expect(splitFilterInfo(filterInfo(49152, 0x0800))).toEqual({ prio: 49152, protocol: 0x0800 });
  });
});

describe("qdisc requests", () => {
  test("TBF at the root: tcmsg, TCA_KIND, TCA_OPTIONS { TCA_TBF_PARMS tc_tbf_qopt }", () => {
    const b = encodeQdisc(
      { ifindex: 5, handle: tcHandle(1, 0), parent: TC_H_ROOT },
      { kind: "tbf", tbf: { rate: 12_500_000, limit: 337_500, buffer: 31_250 } },
    );
    expect(toHex(b)).toBe(
      hex(
        tcmsg("05000000", "00000100", "ffffffff"),
        "0800", "0100", "74626600", //                        TCA_KIND "tbf"
        "2c00", "0200", //                                    TCA_OPTIONS, 44 bytes
        "2800", "0100", //                                      TCA_TBF_PARMS, 40 bytes (tc_tbf_qopt is 36)
        ratespec("01", "20bcbe00"), //                            rate 12500000 B/s, linklayer ethernet
        ratespec("00", "00000000"), //                            no peak rate
        "5c260500", //                                            limit 337500
        "127a0000", //                                            buffer 31250 ticks
        "00000000", //                                            mtu
      ),
    );
    expect(b.length).toBe(72);
  });
  test("a rate of 2^32 B/s or more saturates the u32 and goes in TCA_TBF_RATE64; a burst in TCA_TBF_BURST", () => {
    const b = encodeQdisc({ ifindex: 1, handle: tcHandle(1, 0), parent: TC_H_ROOT }, {
      kind: "tbf",
      tbf: { rate: 5_000_000_000, limit: 1000, buffer: 0xffffffff, burst: 4096 },
    });
    const tail = toHex(b).slice((20 + 8 + 4 + 40) * 2);
    expect(toHex(b).slice((20 + 8 + 8) * 2, (20 + 8 + 8 + 12) * 2)).toBe(ratespec("01", "ffffffff"));
    expect(tail).toBe(hex("0c00", "0400", "00f2052a01000000", "0800", "0600", "00100000"));
  });
  test("ingress: handle ffff:, parent TC_H_INGRESS, no options", () => {
    const b = encodeQdisc({ ifindex: 5, handle: tcHandle(0xffff, 0), parent: TC_H_INGRESS }, { kind: "ingress" });
    expect(toHex(b)).toBe(hex(tcmsg("05000000", "0000ffff", "f1ffffff"), "0c00", "0100", "696e677265737300"));
  });
  test("dump request: a bare tcmsg", () => {
    expect(toHex(encodeTc({ ifindex: 0 }))).toBe(tcmsg("00000000", "00000000", "00000000"));
  });
});

describe("filter requests", () => {
  test("u32 match-all with flowid 1:1 and a mirred egress redirect (stolen)", () => {
    const b = encodeFilter(
      { ifindex: 5, parent: tcHandle(0xffff, 0), prio: 1, protocol: ETH_P_ALL },
      { kind: "u32", u32: { classid: tcHandle(1, 1), actions: [{ kind: "mirred", eaction: TCA_EGRESS_REDIR, ifindex: 9, action: TC_ACT_STOLEN }] } },
    );
    expect(toHex(b)).toBe(
      hex(
        tcmsg("05000000", "00000000", "0000ffff", "00030100"), // info: prio 1, protocol htons(ETH_P_ALL)
        "0800", "0100", "75333200", //                            TCA_KIND "u32"
        "6800", "0200", //                                        TCA_OPTIONS, 104 bytes
        "0800", "0100", "01000100", //                              TCA_U32_CLASSID 1:1
        "2400", "0500", //                                          TCA_U32_SEL, 36 bytes: struct tc_u32_sel
        "01", "00", "01", "00", //                                    flags TERMINAL, offshift, nkeys 1, pad
        "0000", "0000", "0000", "0000", "00000000", //                offmask, off, offoff, hoff, hmask
        "00000000", "00000000", "00000000", "00000000", //            key: mask 0, val 0, off 0, offmask 0
        "3800", "0700", //                                          TCA_U32_ACT, 56 bytes
        mirredAction("09000000"),
      ),
    );
  });
  test("matchall with the same action", () => {
    const b = encodeFilter(
      { ifindex: 5, parent: tcHandle(0xffff, 0), prio: 1, protocol: ETH_P_ALL },
      { kind: "matchall", matchall: { classid: tcHandle(1, 1), actions: [{ kind: "mirred", eaction: TCA_EGRESS_REDIR, ifindex: 9, action: TC_ACT_STOLEN }] } },
    );
    expect(toHex(b)).toBe(
      hex(
        tcmsg("05000000", "00000000", "0000ffff", "00030100"),
        "0d00", "0100", "6d61746368616c6c00", "000000", // TCA_KIND "matchall"
        "4400", "0200", //                                 TCA_OPTIONS, 68 bytes
        "0800", "0100", "01000100", //                       TCA_MATCHALL_CLASSID
        "3800", "0200", //                                   TCA_MATCHALL_ACT
        mirredAction("09000000"),
      ),
    );
  });
});

describe("decoding", () => {
  test("a TBF qdisc from a dump, with RATE64", () => {
    const qopt = fromHex(hex(ratespec("01", "ffffffff"), ratespec("00", "00000000"), "5c260500", "127a0000", "00000000"));
    const body = encodeTc({ ifindex: 3, handle: tcHandle(1, 0), parent: TC_H_ROOT }, [
      nla.str(TCA_KIND, "tbf"),
      nla.nested(TCA_OPTIONS, [nla.bytes(TCA_TBF_PARMS, qopt), nla.u64(4, 5_000_000_000n)]),
    ]);
    const q = decodeTc(body);
    expect(q).toMatchObject({ ifindex: 3, handle: 0x10000, parent: TC_H_ROOT, kind: "tbf" });
    expect(q.tbf).toMatchObject({ limit: 337_500, buffer: 31_250, mtu: 0, rateBytes: 5_000_000_000 });
    expect(q.tbf!.rate.linklayer).toBe(1);
  });
  test("a u32 filter's classid and mirred actions round-trip", () => {
    const body = encodeFilter(
      { ifindex: 5, parent: tcHandle(0xffff, 0), prio: 1, protocol: ETH_P_ALL },
      { kind: "u32", u32: { classid: tcHandle(1, 1), actions: [{ kind: "mirred", eaction: TCA_EGRESS_REDIR, ifindex: 9, action: TC_ACT_STOLEN }] } },
    );
    const f = decodeTc(body);
    expect(f.kind).toBe("u32");
    expect(f.classid).toBe(0x10001);
    expect(f.hasSelector).toBe(true);
    expect(f.actions).toEqual([{ kind: "mirred", index: 0, action: TC_ACT_STOLEN, eaction: TCA_EGRESS_REDIR, ifindex: 9 }]);
  });
  test("a truncated tcmsg is refused", () => {
    expect(() => decodeTc(new Uint8Array(12))).toThrow();
  });
});

describe("psched clock", () => {
  test("current kernels: 64 ns ticks, 15.625 per microsecond", () => {
    const c = parsePsched("000003e8 00000040 000f4240 3b9aca00\n");
    expect(c.tickInUsec).toBe(15.625);
    expect(time2tick(2000, c)).toBe(31_250);
    expect(tick2time(31_250, c)).toBe(2000);
  });
  test("nanosecond clock resolution: iproute2's compatibility rule", () => {
    expect(parsePsched("000003e8 00000040 3b9aca00 3b9aca00").tickInUsec).toBe(1000);
  });
  test("garbage is refused", () => {
    expect(() => parsePsched("nonsense")).toThrow();
  });
});

describe("bandwidth's arithmetic and config (the reference's)", () => {
  test("TBF for 100 Mbit/s with a 200 kbit burst: 12.5 MB/s, 2 ms bucket, limit rate × 25 ms + burst", () => {
    expect(tbfFor(100_000_000, 200_000)).toEqual({ rate: 12_500_000, buffer: 31_250, limit: 337_500 });
  });
  test("a bucket too long for the u32 tick field is also sent as a burst", () => {
    const t = tbfFor(8000, 8_000_000_000);
    expect(t.buffer).toBe(0xffffffff);
    expect(t.burst).toBe(1_000_000_000);
  });
  test("ifb names: bwp + sha512(network name + container id), 15 bytes", () => {
    expect(ifbName("net1", "abc")).toBe("bwp30f8de359c7f");
  });
  test("runtimeConfig wins; rate without burst is code 7; subnets are code 2", () => {
    const base = { cniVersion: "1.0.0", name: "n", type: "bandwidth" };
    expect(parseBandwidth({ ...base, ingressRate: 8000, ingressBurst: 800, runtimeConfig: { bandwidth: { egressRate: 16000, egressBurst: 1600 } } }))
      .toEqual({ ingressRate: 0, ingressBurst: 0, egressRate: 16000, egressBurst: 1600 });
    const code = (conf: Record<string, unknown>) => {
      try {
        parseBandwidth({ ...base, ...conf });
        return 0;
      } catch (e) {
        return (e as CniError).code;
      }
    };
    expect(code({ ingressRate: 1000 })).toBe(7);
    expect(code({ egressBurst: 1000 })).toBe(7);
    expect(code({ runtimeConfig: { bandwidth: { ingressRate: 1000 } } })).toBe(7);
    expect(code({ ingressRate: -1, ingressBurst: 5 })).toBe(2); // not a Go uint64: a wrong type
    expect(code({ ingressRate: 1000, ingressBurst: 8 * 2 ** 32 })).toBe(7);
    expect(code({ unshapedSubnets: ["10.0.0.0/8"] })).toBe(2);
    expect(code({ shapedSubnets: [] })).toBe(0);
  });
});
