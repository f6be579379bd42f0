// A user toolstack for `xenabi conformance --toolstack ./examples/my-toolstack.js`
// (docs/conformance-interfaces.md, contract 1): the kit's deep-tracking save with only the seed's
// option 4 (the generation counter; no option 2 diff, no option 3 dirty-frame resend). It remaps the
// linear list when it grows, but never notices an entry change in an existing leaf: the toolstack
// rules catch it in balloon-storm.
export default {
  contract: 1,
  name: 'my-toolstack',
  createSaver(tools, domid, writer, callbacks, options, kit) {
    return new kit.Saver(tools, domid, writer, callbacks, { ...options, strategy: 'deep-tracking', mechanisms: [4] });
  },
};
