// Hostile disk images against the real qemu-img and QEMU 7.2 (TCG): a qcow2 whose header names a
// host file outside the disk's directory (/etc/shadow, a file made outside), a protocol or json:
// name, no format, a vmdk, a loop, an external data file, a symlink out, a missing file: each is
// refused by preflight before any QEMU starts. A good chain (qcow2 → qcow2 → raw, relative names)
// is stated node by node, and QEMU opens exactly those files (query-named-block-nodes, /proc fds).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readlink, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseVmConfig } from '../../src/config/vm-config.js';
import type { VmSpec } from '../../src/config/vm-spec.js';
import { isSupervisorError } from '../../src/errors.js';
import { SIMULATED_HOST_CAPS } from '../../src/host/simulated.js';
import { prepareVmRunDir } from '../../src/process/run-dir.js';
import { buildQemuArgv } from '../../src/qemu/argv.js';
import { QmpClient } from '../../src/qmp/client.js';
import { quit } from '../../src/qmp/commands.js';
import type { DiskChains } from '../../src/vm/disk-chain.js';
import { preflight } from '../../src/vm/preflight.js';

const QEMU = process.env['QEMU_BIN'] ?? '/usr/bin/qemu-system-x86_64';
const CAN_RUN = existsSync(QEMU) && existsSync('/usr/bin/qemu-img');

let dir: string;
let images: string;
let outside: string;
const img = (name: string): string => join(images, name);

async function qemuImg(...args: string[]): Promise<void> {
  await execa('qemu-img', args);
}

function spec(name: string, disk: string, format = 'qcow2'): VmSpec {
  return parseVmConfig(
    [`name: ${name}`, `disk0: file=${disk},format=${format}`, 'memory: 128', 'cpu: qemu64', ''].join('\n'),
    join(dir, `${name}.conf`),
  );
}

async function refusal(s: VmSpec): Promise<{ code: string; message: string }> {
  const error: unknown = await preflight(s).then(
    () => null,
    (e: unknown) => e,
  );
  if (!isSupervisorError(error)) throw new Error(`preflight accepted ${s.disks[0]?.file}`);
  return { code: error.code, message: error.message };
}

/** Start QEMU (TCG) on `s` with the given chains, run `check` on its QMP session and pid, quit, reap. */
async function withQemu(
  s: VmSpec,
  backingChains: DiskChains | undefined,
  check: (client: QmpClient, pid: number) => Promise<void>,
): Promise<void> {
  const paths = await prepareVmRunDir(join(dir, 'run'), s.name);
  const argv = buildQemuArgv({
    spec: s,
    caps: SIMULATED_HOST_CAPS,
    paths: { monitorSocket: paths.monitorSocket },
    ...(backingChains === undefined ? {} : { backingChains }),
  }).map((a, i, all) => (all[i - 1] === '-accel' ? 'tcg' : a));
  const child = execa(QEMU, argv, { reject: false, stdin: 'ignore', cleanup: true });
  try {
    const client = await QmpClient.connect({ path: paths.monitorSocket, exited: child, connectTimeoutMs: 20_000 });
    try {
      await check(client, child.pid ?? -1);
      await quit(client);
    } finally {
      await client.close();
    }
  } finally {
    child.kill('SIGKILL');
    await child;
  }
}

/** The files the process has open. */
async function openFiles(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`);
  return Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sevsup-chain-'));
  images = join(dir, 'images');
  outside = join(dir, 'elsewhere');
  await mkdir(join(images, 'sub'), { recursive: true });
  await mkdir(outside);
  await writeFile(join(outside, 'secret.raw'), Buffer.concat([Buffer.from('HOST-SECRET-BYTES\n'), Buffer.alloc(1024 * 1024 - 18)]));
  // Good chain: top.qcow2 → sub/mid.qcow2 → base.raw, relative names as qemu-img writes them.
  await qemuImg('create', '-q', '-f', 'raw', img('base.raw'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', '../base.raw', '-F', 'raw', img('sub/mid.qcow2'));
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', 'sub/mid.qcow2', '-F', 'qcow2', img('top.qcow2'));
  // Hostile headers (-u: qemu-img writes the name without opening it).
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', '/etc/shadow', '-F', 'raw', img('shadow.qcow2'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-b', join(outside, 'secret.raw'), '-F', 'raw', img('outside.qcow2'));
  await qemuImg(
    'create',
    '-q',
    '-f',
    'qcow2',
    '-u',
    '-b',
    'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/shadow"}}',
    '-F',
    'raw',
    img('json.qcow2'),
    '1M',
  );
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'nbd:127.0.0.1:10809', '-F', 'raw', img('nbd.qcow2'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'base.raw', '-F', 'vmdk', img('vmdk.qcow2'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'missing.raw', '-F', 'raw', img('missing.qcow2'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-b.qcow2', '-F', 'qcow2', img('loop-a.qcow2'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'loop-a.qcow2', '-F', 'qcow2', img('loop-b.qcow2'), '1M');
  await qemuImg('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(outside, 'data.raw')}`, img('datafile.qcow2'), '1M');
  await symlink(join(outside, 'secret.raw'), img('link-out.raw'));
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'link-out.raw', '-F', 'raw', img('via-link.qcow2'), '1M');
  // No format in the header (as old `qemu-img create -b` without -F wrote): the backing format
  // extension's type renamed to one QEMU ignores.
  await qemuImg('create', '-q', '-f', 'qcow2', '-u', '-b', 'base.raw', '-F', 'raw', img('noformat.qcow2'), '1M');
  const bytes = await readFile(img('noformat.qcow2'));
  const at = bytes.indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
  expect(at).toBeGreaterThan(0);
  bytes.writeUInt32BE(0x5e75_0001, at);
  await writeFile(img('noformat.qcow2'), bytes);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.runIf(CAN_RUN)('disk backing chains (real qemu-img, QEMU under TCG)', () => {
  it.each([
    ['shadow.qcow2', /names the backing \/etc\/shadow .*outside .*images/],
    ['outside.qcow2', /secret\.raw .*lies outside/],
    ['via-link.qcow2', /link-out\.raw \(.*elsewhere\/secret\.raw\), which lies outside/],
    ['json.qcow2', /not a plain file path/],
    ['nbd.qcow2', /"nbd:127\.0\.0\.1:10809", which is not a plain file path/],
    ['vmdk.qcow2', /"vmdk" backing; sevsup opens only qcow2 and raw/],
    ['loop-a.qcow2', /loops/],
    ['datafile.qcow2', /external file/],
    ['noformat.qcow2', /without its format .*qemu-img rebase -u/],
  ])('refuses %s before any QEMU starts', async (name, why) => {
    const { code, message } = await refusal(spec('hostile', img(name)));
    expect(code).toBe('SUP_ERR_DISK_CHAIN_REFUSED');
    expect(message).toMatch(why);
    expect(message).toContain(`${join(dir, 'hostile.conf')}: disk0:`);
  });

  it('refuses a missing backing image and a missing disk with SUP_ERR_DISK_READ', async () => {
    expect(await refusal(spec('m', img('missing.qcow2')))).toMatchObject({
      code: 'SUP_ERR_DISK_READ',
      message: expect.stringMatching(/missing\.raw: cannot read it: no such file/),
    });
    expect(await refusal(spec('m', img('nope.qcow2')))).toMatchObject({ code: 'SUP_ERR_DISK_READ' });
  });

  it('states a good chain node by node, and QEMU opens exactly those files', async () => {
    const s = spec('good', img('top.qcow2'));
    const checked = await preflight(s);
    expect(checked.disks.get(0)).toEqual([
      { file: img('sub/mid.qcow2'), format: 'qcow2' },
      { file: img('base.raw'), format: 'raw' },
    ]);
    await withQemu(s, checked.disks, async (client, pid) => {
      const nodes = (await client.execute('query-named-block-nodes', { flat: true })) as { 'node-name': string; backing_file: string }[];
      const disk0 = nodes.find((n) => n['node-name'] === 'disk0');
      // QEMU describes a stated chain as a json: name: mid.qcow2 (qcow2) over base.raw (raw).
      expect(JSON.parse(disk0?.backing_file.replace(/^json:/, '') ?? '{}')).toEqual({
        driver: 'qcow2',
        file: { driver: 'file', filename: img('sub/mid.qcow2') },
        backing: { driver: 'raw', file: { driver: 'file', filename: img('base.raw') } },
      });
      expect((await openFiles(pid)).filter((p) => p.startsWith(images)).sort()).toEqual(
        [img('base.raw'), img('sub/mid.qcow2'), img('top.qcow2')].sort(),
      );
    });
  });

  it('opens no backing at all for a qcow2 disk without a stated chain, whatever its header names', async () => {
    // The argv alone, without preflight's chain: backing null, so /etc/shadow is never opened.
    await withQemu(spec('pinned', img('shadow.qcow2')), undefined, async (client, pid) => {
      const nodes = (await client.execute('query-named-block-nodes', { flat: true })) as {
        'node-name': string;
        backing_file_depth: number;
        file: string;
      }[];
      expect(nodes.find((n) => n['node-name'] === 'disk0')?.backing_file_depth).toBe(0);
      expect(nodes.map((n) => n.file)).not.toContain('/etc/shadow');
      expect(await openFiles(pid)).not.toContain('/etc/shadow');
    });
  });
});
