// REQ: REG-16 — zips unpacked in the browser (zip.js), folders' paths kept, litter and encrypted entries skipped.
import { Blob as NodeBlob } from 'node:buffer'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { BlobWriter, Uint8ArrayReader, ZipWriter, TextReader } from '@zip.js/zip.js'
import { expand, looksLikeZip, namedFiles } from '../sources'
import { isDicom, parseHeader } from '../dicomHeader'
import { dicomFile } from './fixtures'

async function makeZip(entries: Record<string, Uint8Array | string>, password?: string): Promise<Blob> {
  const w = new ZipWriter(new BlobWriter('application/zip'), { useWebWorkers: false, ...(password ? { password } : {}) })
  for (const [name, data] of Object.entries(entries)) {
    if (name.endsWith('/')) await w.add(name, undefined, { directory: true })
    else await w.add(name, typeof data === 'string' ? new TextReader(data) : new Uint8ArrayReader(data))
  }
  return w.close()
}

// jsdom's Blob reads no bytes back (no arrayBuffer/stream): Node's does, as a browser's does.
beforeAll(() => vi.stubGlobal('Blob', NodeBlob))

describe('reg16 sources', () => {
  it('unpacks a zip: DICOM entries readable, directories and macOS litter left out', async () => {
    const zip = await makeZip({
      'CD/': '',
      'CD/IMG001': dicomFile({ sop: '1.2.1' }),
      'CD/IMG002': dicomFile({ sop: '1.2.2' }),
      'CD/readme.txt': '说明',
      '__MACOSX/CD/._IMG001': 'x',
    })
    const { items, problems } = await expand([{ file: zip, path: 'study.zip' }])
    expect(problems).toEqual([])
    expect(items.map((i) => i.name)).toEqual(['study.zip › CD/IMG001', 'study.zip › CD/IMG002', 'study.zip › CD/readme.txt'])
    const first = await items[0]!.read()
    expect(isDicom(first)).toBe(true)
    expect(parseHeader(await items[1]!.readHead(4096))!.sopInstanceUid).toBe('1.2.2')
    expect(items[0]!.size).toBe(first.length)
    expect(isDicom(await items[2]!.read())).toBe(false)
  })

  it('reports an unreadable archive and encrypted entries, and keeps other files as they are', async () => {
    const broken = new Blob([new Uint8Array([0x50, 0x4b, 3, 4, 1, 2, 3])])
    const locked = await makeZip({ 'secret.dcm': dicomFile() }, 'pw')
    const loose = new Blob([dicomFile()])
    const { items, problems } = await expand([
      { file: broken, path: 'broken.zip' },
      { file: locked, path: 'locked.zip' },
      { file: loose, path: 'dir/IM1' },
    ])
    expect(problems).toEqual([
      { name: 'broken.zip', reason: 'zip_unreadable' },
      { name: 'locked.zip › secret.dcm', reason: 'zip_encrypted' },
    ])
    expect(items.map((i) => i.name)).toEqual(['dir/IM1'])
  })

  it('knows a zip by name or signature, and keeps a folder path', async () => {
    expect(await looksLikeZip({ file: new Blob(['x']), path: 'A.ZIP' })).toBe(true)
    expect(await looksLikeZip({ file: await makeZip({ a: 'b' }), path: 'noext' })).toBe(true)
    expect(await looksLikeZip({ file: new Blob([dicomFile()]), path: 'IM1' })).toBe(false)
    const f = new File(['x'], 'IM1')
    Object.defineProperty(f, 'webkitRelativePath', { value: 'CT/IM1' })
    expect(namedFiles([f])).toEqual([{ file: f, path: 'CT/IM1' }])
  })
})
