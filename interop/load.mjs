// loadPackage finds an npm package the usual way (next to the scripts) or
// in the test-deps cache (.cache/interop/node, or $INTEROP_NODE_MODULES),
// and returns the module and its version. It exits with a FAIL line, which
// the Go test reports, when the package is in neither.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export function loadPackage(name) {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const dirs = [here, process.env.INTEROP_NODE_MODULES || path.join(here, '..', '.cache', 'interop', 'node')];
  const errs = [];
  for (const dir of dirs) {
    try {
      const req = createRequire(path.join(dir, 'package.json'));
      return { module: req(name), version: req(`${name}/package.json`).version };
    } catch (e) {
      errs.push(`${dir}: ${e.message.split('\n')[0]}`);
    }
  }
  console.error(`FAIL cannot load the ${name} package (run scripts/test-deps.sh): ${errs.join('; ')}`);
  process.exit(1);
}
