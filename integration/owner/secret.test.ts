// `sevsup secret build` as an owner runs it: its packet passes the platform's check
// (verifyLaunchSecret), decrypts to the same secret table libvirt's validator builds for the same
// secrets, and is refused with a wrong TIK or one flipped bit. Plus its refusals and exit codes.
import { createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SECRET_ALIASES, verifyLaunchSecret } from '../../src/sev/launch-secret.js';
import { DEBIAN_OVMF, HAVE_VALIDATOR, measurementFor, patchFirmware, runValidator, sevsup, writeRecord } from './helpers.js';

const HOST = { apiMajor: 1, apiMinor: 55, buildId: 21, policy: 0x3 };
const OTHER_GUID = 'e6f5a162-d67f-4750-a67c-5d065f2a9910';

describe.runIf(existsSync(DEBIAN_OVMF))('sevsup secret build', () => {
  let dir = '';
  const f: Record<string, string> = {};
  const tik = randomBytes(16);
  const tek = randomBytes(16);
  const luks = randomBytes(32);
  const other = Buffer.from('a passphrase, with ✓ unicode\n');
  let measurement = '';
  let mac = Buffer.alloc(0);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sevsup-secret-'));
    const put = (name: string, data: Buffer | string): string => {
      const path = join(dir, name);
      writeFileSync(path, data);
      f[name] = path;
      return path;
    };
    put('tik', tik);
    put('tek', tek);
    put('tk', Buffer.concat([tek, tik]));
    put('luks', luks);
    put('other', other);
    put('big', randomBytes(4000));
    put('huge', randomBytes(64 * 1024 + 1));
    f['firmware'] = patchFirmware(DEBIAN_OVMF, join(dir, 'fw.fd'));
    const measured = await sevsup(['measure', '--mode', 'sev', '--firmware', f['firmware']]);
    expect(measured.code, measured.stderr).toBe(0);
    measurement = measurementFor(tik, HOST, measured.stdout.trim());
    mac = Buffer.from(measurement, 'base64').subarray(0, 32);
  });
  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const build = (...extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    sevsup([
      'secret',
      'build',
      '--measurement',
      measurement,
      '--secret',
      `luks-key:${f['luks']}`,
      '--secret',
      `${OTHER_GUID}:${f['other']}`,
      ...extra,
    ]);
  const packet = (header: string, payload: string): { header: Buffer; payload: Buffer } => ({
    header: Buffer.from(readFileSync(header, 'utf8'), 'base64'),
    payload: Buffer.from(readFileSync(payload, 'utf8'), 'base64'),
  });
  const decrypt = (p: { header: Buffer; payload: Buffer }): Buffer => {
    const d = createDecipheriv('aes-128-ctr', tek, p.header.subarray(4, 20));
    return Buffer.concat([d.update(p.payload), d.final()]);
  };

  it('writes a packet (base64, 0600) that the platform accepts, listing the secrets', async () => {
    const h = join(dir, 'h1.b64');
    const p = join(dir, 'p1.b64');
    const r = await build('--tik', f['tik'] ?? '', '--tek', f['tek'] ?? '', '--header-out', h, '--payload-out', p);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`sevsup attest <vm> --inject-secret ${h} ${p}`);
    expect(statSync(h).mode & 0o777).toBe(0o600);
    expect(statSync(p).mode & 0o777).toBe(0o600);
    expect(readFileSync(h, 'utf8')).toMatch(/^[A-Za-z0-9+/]+=*$/);
    const pk = packet(h, p);
    expect(pk.header).toHaveLength(52);
    expect(verifyLaunchSecret({ tik, tek, measurementMac: mac, ...pk })).toEqual({
      ok: true,
      secrets: [
        { guid: SECRET_ALIASES['luks-key'], length: 32 },
        { guid: OTHER_GUID, length: other.length },
      ],
    });
    expect(r.stdout + r.stderr).not.toContain(luks.toString('base64'));
  });

  it('is refused with a wrong TIK, a flipped payload bit or a flipped header bit', async () => {
    const h = join(dir, 'h2.b64');
    const p = join(dir, 'p2.b64');
    expect((await build('--tk', f['tk'] ?? '', '--header-out', h, '--payload-out', p)).code).toBe(0);
    const pk = packet(h, p);
    expect(verifyLaunchSecret({ tik, tek, measurementMac: mac, ...pk }).ok).toBe(true);
    expect(verifyLaunchSecret({ tik: randomBytes(16), measurementMac: mac, ...pk }).ok).toBe(false);
    const payload = Buffer.from(pk.payload);
    payload[payload.length - 1] = (payload[payload.length - 1] ?? 0) ^ 1;
    expect(verifyLaunchSecret({ tik, measurementMac: mac, header: pk.header, payload }).ok).toBe(false);
    const header = Buffer.from(pk.header);
    header[30] = (header[30] ?? 0) ^ 4;
    expect(verifyLaunchSecret({ tik, measurementMac: mac, header, payload: pk.payload }).ok).toBe(false);
    const otherMac = Buffer.from(mac);
    otherMac[0] = (otherMac[0] ?? 0) ^ 1;
    expect(verifyLaunchSecret({ tik, measurementMac: otherMac, ...pk }).ok).toBe(false);
  });

  it.runIf(HAVE_VALIDATOR)("decrypts to the validator's secret table for the same secrets", async () => {
    const ours = { h: join(dir, 'h3.b64'), p: join(dir, 'p3.b64') };
    const theirs = { h: join(dir, 'vh.b64'), p: join(dir, 'vp.b64') };
    const [r, v] = await Promise.all([
      build('--tik', f['tik'] ?? '', '--tek', f['tek'] ?? '', '--header-out', ours.h, '--payload-out', ours.p),
      runValidator({
        measurement,
        ...HOST,
        firmware: f['firmware'] ?? '',
        tik: f['tik'] ?? '',
        tek: f['tek'] ?? '',
        secrets: [`luks-key:${f['luks']}`, `${OTHER_GUID}:${f['other']}`],
        secretHeader: theirs.h,
        secretPayload: theirs.p,
      }),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(v.exitCode, v.stderr).toBe(0);
    const a = packet(ours.h, ours.p);
    const b = packet(theirs.h, theirs.p);
    expect(a.header).toHaveLength(b.header.length);
    expect(a.header.subarray(0, 4)).toEqual(b.header.subarray(0, 4)); // flags
    expect(a.payload).toHaveLength(b.payload.length);
    expect(decrypt(a)).toEqual(decrypt(b));
    expect(verifyLaunchSecret({ tik, tek, measurementMac: mac, ...b }).ok).toBe(true);
  });

  it('takes the measurement from a record in launch-secret, and refuses one captured later (exit 5)', async () => {
    const rec = (state: string): string => {
      const path = join(dir, `rec-${state}.json`);
      writeRecord(path, { host: HOST, measurement, state });
      return path;
    };
    const h = join(dir, 'h4.b64');
    const p = join(dir, 'p4.b64');
    const base = [
      'secret',
      'build',
      '--tk',
      f['tk'] ?? '',
      '--secret',
      `luks-key:${f['luks']}`,
      '--header-out',
      h,
      '--payload-out',
      p,
      '--json',
    ];
    const ok = await sevsup([...base, '--record', rec('launch-secret')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({
      header: h,
      payload: p,
      headerBytes: 52,
      secrets: [{ guid: SECRET_ALIASES['luks-key'], bytes: 32 }],
    });
    expect(verifyLaunchSecret({ tik, tek, measurementMac: mac, ...packet(h, p) }).ok).toBe(true);
    const late = await sevsup([...base, '--record', rec('running')]);
    expect(late.code).toBe(5);
    expect(late.stderr).toMatch(/captured in SEV state "running".*\[SUP_ERR_VERIFY_STATE\]/);
  });

  it('refuses bad keys, measurements, secret specs and sizes with exit 2', async () => {
    const out = ['--header-out', join(dir, 'hx'), '--payload-out', join(dir, 'px')];
    const keys = ['--tik', f['tik'] ?? '', '--tek', f['tek'] ?? ''];
    const cases: [string[], RegExp][] = [
      [
        ['secret', 'build', ...keys, '--measurement', measurement, '--secret', `no-such-alias:${f['luks']}`, ...out],
        /neither a GUID nor a known alias \(luks-key\)/,
      ],
      [['secret', 'build', ...keys, '--measurement', measurement, '--secret', 'luks-key', ...out], /expected GUID-OR-ALIAS:FILE/],
      [['secret', 'build', ...keys, '--measurement', measurement, '--secret', `luks-key:${f['huge']}`, ...out], /larger than 65536 bytes/],
      [
        [
          'secret',
          'build',
          ...keys,
          '--measurement',
          measurement,
          '--secret',
          `luks-key:${f['luks']}`,
          '--secret',
          `${SECRET_ALIASES['luks-key']}:${f['other']}`,
          ...out,
        ],
        /given twice/,
      ],
      [
        ['secret', 'build', ...keys, '--measurement', Buffer.alloc(47).toString('base64'), '--secret', `luks-key:${f['luks']}`, ...out],
        /must be 48 bytes, got 47/,
      ],
      [['secret', 'build', ...keys, '--measurement', 'bad base64!', '--secret', `luks-key:${f['luks']}`, ...out], /not valid base64/],
      [
        ['secret', 'build', '--tik', f['tik'] ?? '', '--measurement', measurement, '--secret', `luks-key:${f['luks']}`, ...out],
        /needs the TEK/,
      ],
      [
        [
          'secret',
          'build',
          '--tik',
          f['tek'] ?? '',
          '--tek',
          f['luks'] ?? '',
          '--measurement',
          measurement,
          '--secret',
          `luks-key:${f['luks']}`,
          ...out,
        ],
        /expected 16 bytes in TEK file .* got 32/,
      ],
      [['secret', 'build', ...keys, '--secret', `luks-key:${f['luks']}`, ...out], /exactly one of --measurement and --record/],
      [
        [
          'secret',
          'build',
          ...keys,
          '--measurement',
          measurement,
          '--secret',
          `luks-key:${f['big']}`,
          '--firmware',
          f['firmware'] ?? '',
          ...out,
        ],
        /secret table is 4048 bytes .* area of 0xc00 bytes at 0x80f000/,
      ],
      [['secret', 'build', ...keys, '--measurement', measurement, ...out], /required option '--secret/],
    ];
    for (const [args, message] of cases) {
      const r = await sevsup(args);
      expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toContain(tik.toString('hex'));
    }
    expect(existsSync(join(dir, 'hx'))).toBe(false);
  });
});
