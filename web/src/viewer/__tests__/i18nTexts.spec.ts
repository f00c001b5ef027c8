// The viewer's and the uploader's user-facing texts live in vue-i18n (UX: UI text Chinese via vue-i18n, never raw codes;
// issue 16): no hard-coded CJK literal in their components and TS modules, and every `viewer.*` / `upload.*` key the
// code asks for exists in zh-CN and en-US.
import { afterEach, describe, expect, it } from 'vitest'
import { i18n } from '@/i18n'
import zhCN from '@/locales/zh-CN'
import enUS from '@/locales/en-US'
import { uploadMessages } from '@/components/upload/messages'
import { TOOLS } from '@/viewer/core/tools'
import { COLORMAPS, DEFAULT_PRESETS, formatWindow } from '@/viewer/core/voi'
import { CORNER_ITEM_LABELS, cornerItem } from '@/viewer/core/corners'
import { NON_IMAGE_SERIES } from '@/viewer/core/series'
import { roiTextLines } from '@/viewer/core/textLines'

const glob = (files: Record<string, unknown>) => files as Record<string, string>
/** The viewer's and the uploader's sources (the scanned scope). */
const SCOPE = {
  ...glob(import.meta.glob('/src/views/viewer/**/*.{ts,vue}', { query: '?raw', import: 'default', eager: true })),
  ...glob(import.meta.glob('/src/viewer/**/*.{ts,vue}', { query: '?raw', import: 'default', eager: true })),
  ...glob(import.meta.glob('/src/components/upload/**/*.{ts,vue}', { query: '?raw', import: 'default', eager: true })),
  ...glob(import.meta.glob('/src/components/report/ImagesCard.vue', { query: '?raw', import: 'default', eager: true })),
  ...glob(import.meta.glob('/src/keymap/viewerBindings.ts', { query: '?raw', import: 'default', eager: true })),
}
/** Every source of the app (for the keys asked for). */
const ALL = glob(import.meta.glob('/src/**/*.{ts,vue}', { query: '?raw', import: 'default', eager: true }))

const isTest = (path: string) => path.includes('/__tests__/')
/** Message files: the place for the texts (the uploader's and the sync window's local scopes). */
const isMessages = (path: string) => /\/messages\.ts$/.test(path) || path.startsWith('/src/locales/')
const CJK = /[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]/

/**
 * TypeScript/JavaScript with its comments blanked (strings, template literals and regex literals kept; newlines kept
 * so line numbers stay right).
 */
function stripComments(src: string): string {
  let out = ''
  let i = 0
  const braces: number[] = [] // template-literal nesting: brace depth at each `${`
  let depth = 0
  let lastSignificant = ''
  const blank = (s: string) => s.replace(/[^\n]/g, ' ')
  const readString = (q: string) => {
    const start = i
    i++
    while (i < src.length && src[i] !== q && src[i] !== '\n') i += src[i] === '\\' ? 2 : 1
    i++
    out += src.slice(start, i)
  }
  const readTemplate = () => {
    // from after the opening backtick (or a closing `}` of `${`) to the closing backtick or the next `${`
    const start = i
    while (i < src.length) {
      if (src[i] === '\\') i += 2
      else if (src[i] === '`') {
        i++
        break
      } else if (src[i] === '$' && src[i + 1] === '{') {
        i += 2
        braces.push(depth)
        depth++
        break
      } else i++
    }
    out += src.slice(start, i)
  }
  while (i < src.length) {
    const c = src[i]
    const n = src[i + 1]
    if (c === '/' && n === '/') {
      const end = src.indexOf('\n', i)
      const stop = end < 0 ? src.length : end
      out += blank(src.slice(i, stop))
      i = stop
    } else if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2)
      const stop = end < 0 ? src.length : end + 2
      out += blank(src.slice(i, stop))
      i = stop
    } else if (c === '/' && (lastSignificant === '' || '(,=:[!&|?{};+-*%<>~^'.includes(lastSignificant))) {
      // a regex literal
      const start = i
      i++
      let inClass = false
      while (i < src.length && src[i] !== '\n') {
        if (src[i] === '\\') i += 2
        else {
          if (src[i] === '[') inClass = true
          else if (src[i] === ']') inClass = false
          else if (src[i] === '/' && !inClass) break
          i++
        }
      }
      i++
      out += src.slice(start, i)
      lastSignificant = 'a'
    } else if (c === "'" || c === '"') {
      readString(c)
      lastSignificant = 'a'
    } else if (c === '`') {
      out += c
      i++
      readTemplate()
      lastSignificant = 'a'
    } else if (c === '}' && braces.length && depth - 1 === braces[braces.length - 1]) {
      braces.pop()
      depth--
      out += c
      i++
      readTemplate()
      lastSignificant = 'a'
    } else {
      if (c === '{') depth++
      if (c === '}') depth--
      if (!/\s/.test(c)) lastSignificant = /[\w$)\]]/.test(c) ? 'a' : c
      out += c
      i++
    }
  }
  return out
}

/** A .vue file with the comments of its scripts and template blanked and its styles dropped. */
function stripVue(src: string): string {
  return src
    .replace(/(<script\b[^>]*>)([\s\S]*?)(<\/script>)/g, (_m, a: string, body: string, b: string) => a + stripComments(body) + b)
    .replace(/<style\b[\s\S]*?<\/style>/g, (m) => m.replace(/[^\n]/g, ' '))
    .replace(/<!--[\s\S]*?-->/g, (m) => m.replace(/[^\n]/g, ' '))
}

/** `file:line: text` of every line with a CJK character outside comments (a line marked `i18n-exempt` is allowed). */
function cjkLiterals(files: Record<string, string>): string[] {
  const found: string[] = []
  for (const [path, src] of Object.entries(files)) {
    if (isTest(path) || isMessages(path) || path.endsWith('.d.ts')) continue
    const code = (path.endsWith('.vue') ? stripVue(src) : stripComments(src)).split('\n')
    const raw = src.split('\n')
    code.forEach((line, i) => {
      if (CJK.test(line) && !raw[i].includes('i18n-exempt')) found.push(`${path}:${i + 1}: ${raw[i].trim()}`)
    })
  }
  return found
}

function flatten(obj: unknown, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>()
  if (obj && typeof obj === 'object') {
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix ? `${prefix}.${k}` : k
      if (v && typeof v === 'object') for (const [kk, vv] of flatten(v, key)) out.set(kk, vv)
      else out.set(key, v)
    }
  }
  return out
}

/** The keys under `root.` asked for with t()/$t()/i18n.global.t() (a `${…}` part becomes a wildcard). */
function keysAskedFor(files: Record<string, string>, root: string): { key: string; where: string }[] {
  const out: { key: string; where: string }[] = []
  const re = new RegExp(String.raw`(?:\bt|\$t|\.t|\bte|\.te)\(\s*(['"\`])(${root}\.[^'"\`]+)\1`, 'g')
  for (const [path, src] of Object.entries(files)) {
    if (isTest(path) || path.startsWith('/src/locales/')) continue
    for (const m of src.matchAll(re)) out.push({ key: m[2], where: path })
  }
  return out
}

function exists(keys: Map<string, unknown>, key: string): boolean {
  if (!key.includes('${')) return typeof keys.get(key) === 'string'
  const pattern = new RegExp(`^${key.split(/\$\{[^}]*\}/).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\w-]+')}$`)
  return [...keys.entries()].some(([k, v]) => pattern.test(k) && typeof v === 'string')
}

describe('viewer and upload texts come from vue-i18n (UX: Chinese UI via vue-i18n)', () => {
  it('scans the viewer and upload sources', () => {
    const paths = Object.keys(SCOPE)
    for (const p of [
      '/src/views/viewer/ViewerToolbar.vue',
      '/src/viewer/core/tools.ts',
      '/src/viewer/core/corners.ts',
      '/src/viewer/persist/KeyImagePanel.vue',
      '/src/components/upload/stow.ts',
      '/src/components/report/ImagesCard.vue',
      '/src/keymap/viewerBindings.ts',
    ]) {
      expect(paths).toContain(p)
    }
  })

  it('finds no hard-coded CJK literal outside comments and message files', () => {
    expect(cjkLiterals(SCOPE)).toEqual([])
  })

  it('the scan sees literals in code and templates, not in comments', () => {
    const files = {
      '/src/viewer/a.ts': "// 注释\n/* 注释 */ const url = 'http://x' // 注释\nconst a = `x${b ? '中' : ''}`\nconst r = /'/g; const s = '文字'\n",
      '/src/viewer/b.vue': "<script setup lang=\"ts\">\n// 注释\n</script>\n<template>\n  <!-- 注释 -->\n  <span>文字</span>\n</template>\n<style>\n.a::after { content: '★' }\n</style>\n",
      '/src/viewer/messages.ts': "export const m = { a: '文字' }\n",
      '/src/viewer/c.ts': "const DUP = '相同' // i18n-exempt: compared with the server's text\n",
    }
    expect(cjkLiterals(files)).toEqual([
      "/src/viewer/a.ts:3: const a = `x${b ? '中' : ''}`",
      "/src/viewer/a.ts:4: const r = /'/g; const s = '文字'",
      '/src/viewer/b.vue:6: <span>文字</span>',
    ])
  })

  it('every viewer.* key the code asks for exists in zh-CN and en-US', () => {
    const zh = flatten(zhCN)
    const en = flatten(enUS)
    const asked = keysAskedFor(ALL, 'viewer')
    expect(asked.length).toBeGreaterThan(100)
    const missing = asked.filter((a) => !exists(zh, a.key) || !exists(en, a.key)).map((a) => `${a.where}: ${a.key}`)
    expect(missing).toEqual([])
    // and both locales have the same viewer.* keys
    const viewerKeys = (m: Map<string, unknown>) => [...m.keys()].filter((k) => k.startsWith('viewer.')).sort()
    expect(viewerKeys(en)).toEqual(viewerKeys(zh))
  })

  it('every upload.* key the code asks for exists in both locales (the uploader scope or the app messages)', () => {
    const asked = keysAskedFor(ALL, 'upload')
    expect(asked.length).toBeGreaterThan(20)
    for (const [locale, app] of [['zh-CN', zhCN], ['en-US', enUS]] as const) {
      const keys = new Map([...flatten(app), ...flatten(uploadMessages[locale])])
      expect(asked.filter((a) => !exists(keys, a.key)).map((a) => `${locale} ${a.where}: ${a.key}`)).toEqual([])
    }
  })
})

describe("the viewer's TS tables follow the UI language", () => {
  afterEach(() => {
    i18n.global.locale.value = 'zh-CN'
  })

  it('tool, preset, colour-map, corner and series names and measurement lines switch with the locale', () => {
    const ds = { '00100020': { vr: 'LO', Value: ['P1'] }, '00101010': { vr: 'AS', Value: ['045Y'] }, '00100040': { vr: 'CS', Value: ['F'] } }
    const view = { index: 2, total: 10, center: 40, width: 400, zoom: 1.5 }
    expect(TOOLS[0].label).toBe('窗宽窗位')
    expect(DEFAULT_PRESETS[0].name).toBe('肺窗')
    expect(COLORMAPS[0].label).toBe('灰度')
    expect(CORNER_ITEM_LABELS.patient_id).toBe('患者编号')
    expect(NON_IMAGE_SERIES.SR).toBe('结构化报告')
    expect(cornerItem('sex_age', ds, view)).toBe('女 / 45岁')
    expect(cornerItem('instance_number', ds, view)).toBe('图像：3 / 10')
    expect(formatWindow(40, 400)).toBe('窗宽 400 窗位 40')
    expect(roiTextLines({ mean: 12.345, modalityUnit: 'HU' })).toEqual(['均值：12.35 HU'])

    i18n.global.locale.value = 'en-US'
    expect(TOOLS[0].label).toBe('Window/level')
    expect(DEFAULT_PRESETS[0].name).toBe('Lung')
    expect(COLORMAPS[0].label).toBe('Greyscale')
    expect(CORNER_ITEM_LABELS.patient_id).toBe('Patient ID')
    expect(NON_IMAGE_SERIES.SR).toBe('Structured report')
    expect(cornerItem('sex_age', ds, view)).toBe('F / 45 y')
    expect(cornerItem('zoom', ds, view)).toBe('Zoom: 150%')
    expect(roiTextLines({ mean: 12.345, modalityUnit: 'HU' })).toEqual(['Mean: 12.35 HU'])
    // the series list's count: English has a singular
    expect([1, 20].map((n) => i18n.global.t('viewer.series.count', { n }, n))).toEqual(['1 image', '20 images'])
    i18n.global.locale.value = 'zh-CN'
    expect(i18n.global.t('viewer.series.count', { n: 20 }, 20)).toBe('20 幅')
  })
})
