/**
 * A small seeded PRNG (xorshift128+ style on 32-bit halves): every random choice in the kit comes
 * from a printed seed, so a failure replays exactly.
 */

export class Rng {
  private a: number;
  private b: number;

  constructor(readonly seed: number) {
    // splitmix-style scrambling so nearby seeds give unrelated streams.
    let x = seed >>> 0 || 0x9e3779b9;
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next() || 1;
    this.b = next() || 2;
  }

  /** A uniformly random 32-bit unsigned integer. */
  u32(): number {
    let s1 = this.a;
    const s0 = this.b;
    this.a = s0;
    s1 ^= s1 << 23;
    s1 ^= s1 >>> 17;
    s1 ^= s0;
    s1 ^= s0 >>> 26;
    this.b = s1 >>> 0;
    return (this.b + s0) >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 2 ** 32) * n);
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }

  /** A random 64-bit value. */
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** Derives an independent seed for a sub-run (an episode), so it can be replayed alone. */
  static derive(seed: number, ...parts: number[]): number {
    let h = seed >>> 0;
    for (const p of parts) h = Math.imul(h ^ (p >>> 0), 0x01000193) >>> 0;
    return h;
  }
}
