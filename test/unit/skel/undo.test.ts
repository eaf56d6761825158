import { describe, expect, test } from "bun:test";
import { UndoStack } from "../../../src/skel/undo.ts";

describe("UndoStack", () => {
  test("unwind runs the actions newest first, async ones awaited, and empties the stack", async () => {
    const ran: string[] = [];
    const u = new UndoStack();
    u.push("a", () => ran.push("a"));
    u.push("b", async () => {
      await Bun.sleep(1);
      ran.push("b");
    });
    u.push("c", () => ran.push("c"));
    expect(u.size).toBe(3);
    await u.unwind();
    expect(ran).toEqual(["c", "b", "a"]);
    expect(u.size).toBe(0);
    await u.unwind();
    expect(ran).toEqual(["c", "b", "a"]);
  });

  test("a failing action is logged and the older ones still run", async () => {
    const ran: string[] = [];
    const logs: string[] = [];
    const u = new UndoStack();
    u.push("the reservation", () => ran.push("ipam"));
    u.push("the veth pair", () => {
      throw new Error("EBUSY");
    });
    u.push("masquerading", async () => {
      throw new Error("no table");
    });
    await u.unwind((m) => logs.push(m));
    expect(ran).toEqual(["ipam"]);
    expect(logs).toEqual(["undoing masquerading failed: no table", "undoing the veth pair failed: EBUSY"]);
  });
});
