/**
 * en-US names everything zh-CN names (the type already demands it): the same keys, no empty message, and the same
 * {placeholders} in each message, so an interpolated value is never lost in one language.
 */
import { describe, expect, it } from 'vitest'
import zhCN from '@/locales/zh-CN'
import enUS from '@/locales/en-US'

type Tree = { [key: string]: string | Tree }

function leaves(tree: Tree, prefix = ''): Map<string, string> {
  const out = new Map<string, string>()
  for (const [key, value] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${key}` : key
    if (typeof value === 'string') out.set(path, value)
    else for (const [k, v] of leaves(value, path)) out.set(k, v)
  }
  return out
}

function placeholders(message: string): string[] {
  return [...new Set([...message.matchAll(/\{(\w+)\}/g)].map((m) => m[1]))].sort() // a plural form repeats them
}

describe('locale files', () => {
  const zh = leaves(zhCN as unknown as Tree)
  const en = leaves(enUS as unknown as Tree)

  it('have the same keys', () => {
    expect(zh.size).toBeGreaterThan(500)
    expect([...zh.keys()].filter((k) => !en.has(k))).toEqual([])
    expect([...en.keys()].filter((k) => !zh.has(k))).toEqual([])
  })

  it('have no empty message and the same placeholders in each', () => {
    const empty = [...en].filter(([, v]) => !v.trim()).map(([k]) => k)
    expect(empty).toEqual([])
    const differ = [...zh].filter(([k, v]) => placeholders(v).join() !== placeholders(en.get(k) ?? '').join())
    expect(differ.map(([k]) => k)).toEqual([])
  })

  it('en-US is English: no Chinese characters left', () => {
    const chinese = [...en].filter(([, v]) => /[\u4e00-\u9fff]/.test(v)).map(([k]) => k)
    expect(chinese).toEqual([])
  })
})
