// The emoji picker: categories, search (English and Chinese names) and
// recently used ones. The data (~1 900 emoji) loads the first time it opens.
import { h, clear } from './dom.js';
import { t, language } from './i18n.js';

const RECENT_KEY = 'parley.emoji.recent';
const RECENT_MAX = 24;

export class EmojiPicker {
  constructor({ button, panel, onPick }) {
    Object.assign(this, { button, panel, onPick });
    this.groups = null;
    this.built = false;
    button.addEventListener('click', () => (this.panel.hidden ? this.open() : this.close()));
    panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation();
        this.close(true);
      }
    });
    document.addEventListener('pointerdown', (event) => {
      if (!this.panel.hidden && !this.panel.contains(event.target) && !this.button.contains(event.target)) this.close();
    });
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  async open() {
    this.panel.hidden = false;
    this.button.setAttribute('aria-expanded', 'true');
    if (!this.groups) {
      clear(this.panel).append(h('p', { class: 'emoji-empty' }, t('common.loading')));
      const { EMOJI_GROUPS } = await import('./emoji-data.js');
      this.groups = EMOJI_GROUPS;
    }
    if (!this.built) this.build();
    this.renderGrid('');
    this.search.value = '';
    this.search.focus();
  }

  close(returnFocus = false) {
    if (this.panel.hidden) return;
    this.panel.hidden = true;
    this.button.setAttribute('aria-expanded', 'false');
    if (returnFocus) this.button.focus();
  }

  recent() {
    try {
      return JSON.parse(localStorage.getItem(RECENT_KEY) || '[]');
    } catch {
      return [];
    }
  }

  remember(emoji) {
    const list = [emoji, ...this.recent().filter((e) => e !== emoji)].slice(0, RECENT_MAX);
    try {
      localStorage.setItem(RECENT_KEY, JSON.stringify(list));
    } catch {
      /* storage full or disabled: recents are a nicety */
    }
  }

  build() {
    this.search = h('input', {
      type: 'search',
      placeholder: t('emoji.search'),
      'aria-label': t('emoji.search'),
      oninput: () => this.renderGrid(this.search.value),
    });
    this.tabs = h('div', { class: 'emoji-tabs', role: 'tablist', 'aria-label': t('emoji.title') });
    this.grid = h('div', { class: 'emoji-grid', tabindex: '-1' });
    const categories = [['recent', '🕘'], ...this.groups.map(([key, items]) => [key, items[0]?.[0] ?? '?'])];
    for (const [key, icon] of categories) {
      this.tabs.append(
        h(
          'button',
          {
            type: 'button',
            role: 'tab',
            'aria-selected': 'false',
            'aria-label': t(`emoji.cat.${key}`),
            title: t(`emoji.cat.${key}`),
            dataset: { cat: key },
            onclick: () => this.showCategory(key),
          },
          icon,
        ),
      );
    }
    clear(this.panel).append(h('div', { class: 'emoji-search' }, this.search), this.tabs, this.grid);
    this.built = true;
  }

  showCategory(key) {
    this.search.value = '';
    this.renderGrid('');
    const section = this.grid.querySelector(`[data-section="${key}"]`);
    if (section) this.grid.scrollTop = section.offsetTop - this.grid.offsetTop;
    for (const tab of this.tabs.children) tab.setAttribute('aria-selected', String(tab.dataset.cat === key));
  }

  renderGrid(query) {
    const q = query.trim().toLowerCase();
    const label = (en, zh) => (language() === 'en' ? en : zh || en).split(' ').slice(0, 4).join(' ');
    clear(this.grid);
    if (q) {
      const found = [];
      for (const [, items] of this.groups) {
        for (const [emoji, en, zh] of items) if (en.includes(q) || zh.includes(q) || emoji === q) found.push([emoji, label(en, zh)]);
      }
      if (!found.length) this.grid.append(h('p', { class: 'emoji-empty' }, t('emoji.no_results')));
      else this.grid.append(this.section('search', t('emoji.search'), found.slice(0, 300)));
      return;
    }
    const names = new Map();
    for (const [, items] of this.groups) for (const [emoji, en, zh] of items) names.set(emoji, label(en, zh));
    const recent = this.recent();
    if (recent.length) this.grid.append(this.section('recent', t('emoji.cat.recent'), recent.map((e) => [e, names.get(e) ?? e])));
    for (const [key, items] of this.groups) {
      this.grid.append(this.section(key, t(`emoji.cat.${key}`), items.map(([emoji]) => [emoji, names.get(emoji)])));
    }
  }

  section(key, title, items) {
    const id = `emoji-h-${key}`;
    return h(
      'section',
      { dataset: { section: key }, 'aria-labelledby': id },
      h('h3', { id }, title),
      h(
        'div',
        { class: 'emoji-cells' },
        items.map(([emoji, name]) =>
          h('button', { type: 'button', 'aria-label': name, title: name, onclick: () => this.pick(emoji) }, emoji),
        ),
      ),
    );
  }

  pick(emoji) {
    this.remember(emoji);
    this.onPick(emoji);
    this.close();
  }
}
