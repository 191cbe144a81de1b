/**
 * A careless operator raises the V8 heap through extraEnv NODE_OPTIONS (the README suggests it for
 * large directories) but not the pod's memory limit: the heap may then outgrow the container and
 * the kernel kills the pod (SIGKILL: no drain, no answer file saved) instead of V8 collecting
 * garbage. The chart rendered it; it now refuses it, naming both values. Uses the real helm.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { HELM_INSTALL_MS, helmTemplate, installHelm } from '../helpers/helm.js';

let helm = '';
before(async () => {
  helm = await installHelm();
}, { timeout: HELM_INSTALL_MS + 60_000 });

const heap = (value: string, limit?: string) => [
  '--set', 'extraEnv[0].name=NODE_OPTIONS', '--set', `extraEnv[0].value=${value}`,
  ...(limit === undefined ? [] : ['--set', `resources.limits.memory=${limit}`]),
];

describe('helm chart: NODE_OPTIONS heap against the memory limit', () => {
  const refused: Array<[string, string[]]> = [
    ['a heap of twice the default 512Mi limit', heap('--max-old-space-size=1024')],
    ['a heap equal to the limit, in decimal units', heap('--max-semi-space-size=8 --max_old_space_size=600', '600M')],
    ['a heap above a limit written in bytes', heap('--max-old-space-size=4096', '536870912')],
  ];
  for (const [what, args] of refused) {
    it(`refuses ${what}`, async () => {
      const res = await helmTemplate(helm, args);
      assert.equal(res.ok, false, `rendered ${args.join(' ')}`);
      assert.match(res.output, /extraEnv NODE_OPTIONS lets the V8 heap grow to \d+ MiB, not below resources\.limits\.memory/);
    });
  }

  const accepted: Array<[string, string[]]> = [
    ['three quarters of the default limit', heap('--max-old-space-size=384')],
    ['a raised heap with a raised limit', heap('--max-old-space-size=1536', '2Gi')],
    ['options without a heap size', heap('--enable-source-maps')],
    ['a heap with no memory limit at all', [...heap('--max-old-space-size=4096'), '--set', 'resources.limits=null']],
  ];
  for (const [what, args] of accepted) {
    it(`renders ${what}`, async () => {
      const res = await helmTemplate(helm, args);
      assert.equal(res.ok, true, res.output);
      assert.match(res.output, /name: NODE_OPTIONS/);
    });
  }
});
