// Registers istanbul's ESM loader hook for `npm run coverage`. It must be imported before
// tsx/esm (see .mocharc.coverage.json): in the other order branch figures come out too low.
import { register } from 'node:module';

register('@istanbuljs/esm-loader-hook', import.meta.url);
