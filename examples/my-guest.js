// A user guest for `xenabi conformance --guest ./examples/my-guest.js` (docs/conformance-interfaces.md,
// contract 1). It is the kit's Linux-like guest with one change: the generation bracket forgets the
// closing bump when a remap installs a PTE page — a bug the guest rules (G-GEN-01) catch in p2m-growth.
export default {
  contract: 1,
  name: 'my-guest',
  personality: 'linear',
  create(built, xen, options, kit) {
    class MyGuest extends kit.PvGuest {
      *generationBracket(install) {
        this.stats.structuralChanges++;
        const g = this.readShared('p2m_generation');
        yield* this.storeShared('p2m_generation', g + 1n, 'my-guest: p2m_generation++');
        yield* install;
        // (the closing p2m_generation++ is missing)
      }
    }
    return new MyGuest(built, xen, options);
  },
};
