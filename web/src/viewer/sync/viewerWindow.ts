/**
 * The viewer's second window (REQ: RPT-12, REC-11/12; UX R23): opened from the report window, placed on the second
 * screen when the Window Management API is granted (`window.getScreenDetails()`), else where it was last time (or
 * where the browser puts a new window); its position and size are remembered per user in the `window.positions`
 * setting (engine/settings/registry.py) under WINDOW_ID.
 */

export const WINDOW_ID = 'viewer_window'
export const WINDOW_NAME = 'telerad-viewer'
export const DEFAULT_SIZE = { width: 1280, height: 900 }

export interface Rect {
  x: number
  y: number
  width: number
  height: number
  screen?: number | null
}

/** The parts of ScreenDetailed / ScreenDetails the placement reads (Window Management API). */
export interface ScreenLike {
  availLeft: number
  availTop: number
  availWidth: number
  availHeight: number
  isPrimary?: boolean
}
export interface ScreenDetailsLike {
  screens: ScreenLike[]
  currentScreen: ScreenLike
}

type WindowWithScreens = Window & { getScreenDetails?: () => Promise<ScreenDetailsLike> }

/** window.open features for a popup at `r` (integers, at least 100 × 100). */
export function features(r: Rect | null): string {
  const size = r ?? { ...DEFAULT_SIZE, x: NaN, y: NaN }
  const parts = ['popup=yes', `width=${Math.max(100, Math.round(size.width))}`, `height=${Math.max(100, Math.round(size.height))}`]
  if (Number.isFinite(size.x) && Number.isFinite(size.y)) parts.push(`left=${Math.round(size.x)}`, `top=${Math.round(size.y)}`)
  return parts.join(',')
}

function inside(r: Rect, s: ScreenLike): boolean {
  const cx = r.x + r.width / 2
  const cy = r.y + r.height / 2
  return cx >= s.availLeft && cx < s.availLeft + s.availWidth && cy >= s.availTop && cy < s.availTop + s.availHeight
}

/**
 * Where the viewer window goes given the screens: the remembered rectangle if it still lies on one of them, else
 * the whole available area of a screen other than the report window's (the second screen), else null (one screen:
 * leave the window where it was opened).
 */
export function placement(details: ScreenDetailsLike, saved: Rect | null): Rect | null {
  const screens = details.screens
  if (saved) {
    const idx = screens.findIndex((s) => inside(saved, s))
    if (idx >= 0) return { ...saved, screen: idx }
  }
  const idx = screens.findIndex((s) => s !== details.currentScreen && !sameScreen(s, details.currentScreen))
  if (idx < 0) return null
  const s = screens[idx]!
  return { x: s.availLeft, y: s.availTop, width: s.availWidth, height: s.availHeight, screen: idx }
}

function sameScreen(a: ScreenLike, b: ScreenLike): boolean {
  return a.availLeft === b.availLeft && a.availTop === b.availTop && a.availWidth === b.availWidth && a.availHeight === b.availHeight
}

/**
 * The screens, if the Window Management permission is granted — never asks (a prompt from here would come after
 * the click's user activation is spent). `ask` (a click on 允许多屏) asks.
 */
export async function screenDetails(ask = false, win: WindowWithScreens = window): Promise<ScreenDetailsLike | null> {
  if (typeof win.getScreenDetails !== 'function') return null
  if (!ask) {
    try {
      const st = await navigator.permissions.query({ name: 'window-management' as PermissionName })
      if (st.state !== 'granted') return null
    } catch {
      return null
    }
  }
  try {
    return await win.getScreenDetails()
  } catch {
    return null // refused
  }
}

/**
 * Open (or bring forward) the viewer window at once — in the click, so no popup blocker objects — at the remembered
 * rectangle, then ask for the screens (the browser asks the user once for the window-management permission; refused
 * or unsupported: the window stays where it opened) and move it to the second screen. Returns the window, or null if
 * blocked.
 */
export async function openViewerWindow(url: string, saved: Rect | null, opener: WindowWithScreens = window): Promise<Window | null> {
  const win = opener.open(url, WINDOW_NAME, features(saved))
  if (!win) return null
  const details = await screenDetails(true, opener)
  const target = details ? placement(details, saved) : null
  if (target) {
    try {
      win.moveTo(target.x, target.y)
      win.resizeTo(target.width, target.height)
    } catch {
      // a window the browser will not move (a tab) stays where it is
    }
  }
  return win
}

/** The window's own rectangle (in the viewer window, to remember it). */
export function currentRect(win: Window = window, screenIndex: number | null = null): Rect {
  return {
    x: Math.round(win.screenX),
    y: Math.round(win.screenY),
    width: Math.max(100, Math.round(win.outerWidth)),
    height: Math.max(100, Math.round(win.outerHeight)),
    screen: screenIndex,
  }
}

export function sameRect(a: Rect | null | undefined, b: Rect | null | undefined): boolean {
  return !!a && !!b && a.x === b.x && a.y === b.y && a.width === b.width && a.height === b.height
}
