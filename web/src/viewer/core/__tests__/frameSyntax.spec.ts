// REQ: VIEW-01, UX R18 (issue 16): the client rule that chooses the frames' Accept header — bandwidth mode.
import { afterEach, describe, expect, it } from 'vitest'
import {
  ACCEPT_AS_STORED,
  ACCEPT_UNCOMPRESSED_FIRST,
  acceptFor,
  bandwidthMode,
  frameAccept,
  isLocalHost,
  linkOf,
  setBandwidthMode,
} from '../frameSyntax'

const JLL = '1.2.840.10008.1.2.4.70'
const JLL14 = '1.2.840.10008.1.2.4.57'
const J2K = '1.2.840.10008.1.2.4.90'
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50'
const EXPLICIT = '1.2.840.10008.1.2.1'
const RLE = '1.2.840.10008.1.2.5'

describe('frameAccept', () => {
  it('asks JPEG lossless, JPEG-LS and JPEG 2000 uncompressed on a LAN, the stored syntax as the fallback', () => {
    for (const ts of [JLL, JLL14, J2K, '1.2.840.10008.1.2.4.80']) expect(frameAccept(ts, 'lan')).toBe(ACCEPT_UNCOMPRESSED_FIRST)
    expect(ACCEPT_UNCOMPRESSED_FIRST).toBe(
      'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1, ' +
        'multipart/related; type="application/octet-stream"; transfer-syntax=*; q=0.5',
    )
  })

  it('asks 12-bit JPEG extended uncompressed first on either link (the browser decodes it wrongly)', () => {
    for (const link of ['lan', 'wan'] as const) expect(frameAccept('1.2.840.10008.1.2.4.51', link)).toBe(ACCEPT_UNCOMPRESSED_FIRST)
  })

  it('asks everything else as stored on a WAN', () => {
    for (const ts of [JLL, J2K, EXPLICIT, JPEG_BASELINE]) expect(frameAccept(ts, 'wan')).toBe(ACCEPT_AS_STORED)
    expect(ACCEPT_AS_STORED).toBe('multipart/related; type="application/octet-stream"; transfer-syntax=*')
  })

  it('asks uncompressed, lossy JPEG, RLE and unknown data as stored even on a LAN', () => {
    for (const ts of [EXPLICIT, JPEG_BASELINE, RLE, undefined, '']) expect(frameAccept(ts, 'lan')).toBe(ACCEPT_AS_STORED)
  })
})

describe('linkOf / isLocalHost', () => {
  it('auto is LAN for loopback, private addresses and local names, WAN for public hosts', () => {
    for (const h of ['localhost', '127.0.0.1', '10.1.2.3', '172.20.0.5', '192.168.1.10', '[::1]', 'fd12:3456::1', 'pacs', 'telerad.hospital.lan'])
      expect([h, linkOf('auto', h)]).toEqual([h, 'lan'])
    for (const h of ['telerad.example.com', '8.8.8.8', '172.32.0.1', '2001:db8::1', '11.0.0.1'])
      expect([h, linkOf('auto', h)]).toEqual([h, 'wan'])
    expect(isLocalHost('169.254.10.1')).toBe(true)
  })

  it('an explicit mode wins over the host', () => {
    expect(linkOf('wan', 'localhost')).toBe('wan')
    expect(linkOf('lan', 'telerad.example.com')).toBe('lan')
  })
})

describe('setBandwidthMode / acceptFor', () => {
  afterEach(() => setBandwidthMode('auto'))

  it('follows the user setting; unknown values count as auto', () => {
    // the test page runs on localhost: auto means LAN
    expect(acceptFor(JLL)).toBe(ACCEPT_UNCOMPRESSED_FIRST)
    setBandwidthMode('wan')
    expect(bandwidthMode()).toBe('wan')
    expect(acceptFor(JLL)).toBe(ACCEPT_AS_STORED)
    setBandwidthMode('turbo')
    expect(bandwidthMode()).toBe('auto')
    setBandwidthMode(null)
    expect(acceptFor(JLL)).toBe(ACCEPT_UNCOMPRESSED_FIRST)
  })
})
