/**
 * A small seeded PRNG (xoshiro128**, four 32-bit words of state): every random choice in the kit
 * comes from a printed seed, so a failure replays exactly.
 */

export class Rng {
  private readonly s = new Uint32Array(4);

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
    for (let i = 0; i < 4; i++) this.s[i] = next();
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  /** A uniformly random 32-bit unsigned integer. */
  u32(): number {
    // The xorshift128+-on-32-bit-halves core this replaced drew small values about half as often
    // as it should (chance(0.003) came out near 0.0015).
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
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

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
