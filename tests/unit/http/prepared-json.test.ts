import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PreparedJson, sendPrepared } from '../../../src/http/prepared-json.ts';

const value = { name: 'h1', state: { routes: [{ dst: '2001:db8::/64', note: 'ü "quoted"' }] } };
const hooked: unknown[] = [];
let server: import('node:http').Server;
let base: string;

beforeAll(async () => {
  const app = express();
  app.get('/json', (_req, res) => void res.json(value));
  app.get('/prepared', (_req, res) => sendPrepared(res, new PreparedJson(value)));
  // What response validation does: wrap res.json on the response object.
  app.get('/hooked', (_req, res) => {
    const original = res.json.bind(res);
    res.json = (body: unknown) => {
      hooked.push(body);
      return original(body);
    };
    sendPrepared(res, new PreparedJson(value));
  });
  server = await new Promise((r) => {
    const s = app.listen(0, '127.0.0.1', () => r(s));
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => void server?.close());

describe('sendPrepared', () => {
  it('when a prepared body is sent, then the bytes, content type and ETag are what res.json sends', async () => {
    const [a, b] = await Promise.all([fetch(`${base}/json`), fetch(`${base}/prepared`)]);
    expect(await b.text()).toBe(await a.text());
    expect(b.headers.get('content-type')).toBe(a.headers.get('content-type'));
    expect(b.headers.get('etag')).toBe(a.headers.get('etag'));
  });

  it('when res.json is wrapped on the response (response validation), then the value goes through the wrapper', async () => {
    const res = await fetch(`${base}/hooked`);
    expect(await res.json()).toEqual(value);
    expect(hooked).toEqual([value]);
  });
});
