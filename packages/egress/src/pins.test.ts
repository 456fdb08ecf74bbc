import { describe, expect, it } from "vitest";
import { EgressPins } from "./pins.js";

describe("EgressPins", () => {
  it("keeps several names per address, forgets expired ones, and evicts the oldest beyond its bound", () => {
    const pins = new EgressPins(3);
    pins.pin("192.0.2.1", "a.example", 1000);
    pins.pin("192.0.2.1", "b.example", 5000);
    expect([...pins.namesFor("192.0.2.1", 500)].sort()).toEqual(["a.example", "b.example"]);
    expect([...pins.namesFor("192.0.2.1", 2000)]).toEqual(["b.example"]);
    pins.pin("192.0.2.2", "c.example", 9000);
    pins.pin("192.0.2.3", "d.example", 9000);
    pins.pin("192.0.2.4", "e.example", 9000);
    expect(pins.size).toBe(3);
    expect(pins.namesFor("192.0.2.1", 2000).size).toBe(0);
    expect([...pins.namesFor("192.0.2.4", 2000)]).toEqual(["e.example"]);
    // Answering an address again makes it the newest.
    pins.pin("192.0.2.2", "c.example", 9000);
    pins.pin("192.0.2.5", "f.example", 9000);
    expect(pins.namesFor("192.0.2.2", 2000).size).toBe(1);
    expect(pins.namesFor("192.0.2.3", 2000).size).toBe(0);
  });
});
