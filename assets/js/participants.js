// The right column: the open room's members with presence, names, bio,
// membership and tags; online members first. In a direct room it is the
// other person's profile instead.
import { h, clear, perFrame } from './dom.js';
import { t } from './i18n.js';
import { avatarWithDot, realName, shownName, tagPills } from './format.js';
import { peerCard, wentOffline } from './people.js';

const ROLE_RANK = { owner: 0, admin: 1, member: 2 };

export class Participants {
  constructor({ list, count, title, peer, onProfile }) {
    Object.assign(this, { listEl: list, countEl: count, titleEl: title, peerEl: peer, onProfile });
    this.people = new Map();
    // While disconnected, presence is not known: shown as unknown, not as it last was.
    this.presenceKnown = true;
    this.peerId = null;
    this.schedule = perFrame(() => this.render());
  }

  setPresenceKnown(known) {
    if (known === this.presenceKnown) return;
    this.presenceKnown = known;
    this.render();
  }

  /** `peerId`: the room is direct, show that member's profile; null: the member list. */
  set(participants, peerId = null) {
    this.peerId = peerId;
    this.people = new Map(participants.map((p) => [p.id, p]));
    this.render();
  }

  clear() {
    this.people = new Map();
    this.peerId = null;
    this.render();
  }

  get(userId) {
    return this.people.get(userId);
  }

  setOnline(userId, online, profile) {
    const person = this.people.get(userId);
    if (!person) return;
    if (online) Object.assign(person, profile ?? {}, { is_online: true });
    // Going offline now (not merely known to be offline): last seen now.
    else if (person.is_online || profile) Object.assign(person, wentOffline(profile ?? {}, person));
    else person.is_online = false;
    this.schedule();
  }

  update(userId, fields) {
    const person = this.people.get(userId);
    if (!person) return;
    Object.assign(person, fields);
    this.schedule();
  }

  sorted() {
    return [...this.people.values()].sort(
      (a, b) =>
        (this.presenceKnown ? Number(b.is_online) - Number(a.is_online) : 0) ||
        (ROLE_RANK[a.role] ?? 3) - (ROLE_RANK[b.role] ?? 3) ||
        shownName(a).localeCompare(shownName(b)),
    );
  }

  render() {
    const peer = this.peerId && this.people.get(this.peerId);
    this.listEl.hidden = Boolean(peer);
    this.peerEl.hidden = !peer;
    const title = peer ? t('people.profile_title') : t('participants.title');
    if (this.titleEl.textContent !== title) this.titleEl.textContent = title;
    if (peer) {
      this.countEl.textContent = '';
      clear(this.peerEl).append(peerCard(peer, { onProfile: this.onProfile, presenceKnown: this.presenceKnown }));
      return;
    }
    clear(this.peerEl);
    const people = this.sorted();
    const online = people.filter((p) => p.is_online).length;
    this.countEl.textContent = !people.length ? '' : this.presenceKnown ? `${online}/${people.length}` : String(people.length);
    clear(this.listEl);
    if (!people.length) {
      this.listEl.append(h('li', { class: 'muted participant-empty' }, t('participants.none')));
      return;
    }
    if (!this.presenceKnown) this.listEl.append(h('li', { class: 'muted participant-note' }, t('phone.presence_unknown')));
    this.listEl.append(...people.map((person) => this.item(person)));
  }

  item(person) {
    const real = realName(person);
    const muted = person.muted_until && Date.parse(person.muted_until) > Date.now();
    const role = person.role && person.role !== 'member' ? t(`room.role_${person.role}`) : null;
    const known = this.presenceKnown;
    const presence = !known ? t('phone.presence_unknown') : person.is_online ? t('presence.online') : t('presence.offline');
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: !known ? 'participant presence-unknown' : person.is_online ? 'participant online' : 'participant offline',
          dataset: { user: person.id, online: known ? String(Boolean(person.is_online)) : 'unknown' },
          onclick: () => this.onProfile(person.id),
          'aria-label': `${shownName(person)}, ${presence}`,
          title: known ? null : presence,
        },
        avatarWithDot(person.avatar_url, known ? person.is_online : null),
        h(
          'span',
          { class: 'p-main' },
          h('span', { class: 'p-line' }, h('span', { class: 'p-name' }, shownName(person)), role ? h('span', { class: 'p-role' }, role) : null),
          real ? h('span', { class: 'p-real' }, real) : null,
          person.bio ? h('span', { class: 'p-bio' }, person.bio) : null,
          muted ? h('span', { class: 'p-muted' }, t('participants.muted')) : null,
          tagPills(person.tag_details, { compact: true }),
        ),
      ),
    );
  }
}
