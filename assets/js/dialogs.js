// Modal dialogs (native <dialog>: focus stays inside, Esc closes, focus
// returns to the opener): new group, new direct message, public rooms, a
// user's profile card, and a room's details and moderation.
import { h, clear, debounce, toast } from './dom.js';
import { icon } from './icons.js';
import { t, tn, formatDateTime } from './i18n.js';
import { del, get, patch, post } from './api.js';
import { avatar, avatarWithDot, realName, shownName, tagPills, roomTitle } from './format.js';
import { localTime, presenceText } from './people.js';

let dialogCount = 0;

const FOCUSABLE = 'button:not([disabled]), [href], input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/** Keeps Tab inside a modal: past the last control it comes back to the first, and the other way. */
export function trapTab(dialog, event) {
  if (event.key !== 'Tab') return;
  const focusable = [...dialog.querySelectorAll(FOCUSABLE)].filter((el) => el.getClientRects().length > 0);
  if (!focusable.length) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (event.shiftKey && (document.activeElement === first || !dialog.contains(document.activeElement))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (document.activeElement === last || !dialog.contains(document.activeElement))) {
    event.preventDefault();
    first.focus();
  }
}

export function openDialog({ title, body, footer, className = '' }) {
  dialogCount += 1;
  const titleId = `dialog-title-${dialogCount}`;
  const dialog = h(
    'dialog',
    { class: className, 'aria-labelledby': titleId },
    h(
      'div',
      { class: 'dialog-head' },
      h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': t('common.close'), title: t('common.close'), onclick: () => dialog.close() }, icon('x')),
    ),
    h('div', { class: 'dialog-body' }, body),
    footer ? h('div', { class: 'dialog-foot' }, footer) : null,
  );
  dialog.addEventListener('close', () => dialog.remove());
  dialog.addEventListener('keydown', (event) => trapTab(dialog, event));
  // A click on the backdrop (the dialog element itself, outside its content) closes it.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close();
  });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/**
 * The app's own confirmation (never the browser's confirm()): a modal that
 * traps focus, starts on Cancel, cancels on Escape and gives focus back to
 * the opener. A dangerous action's button is styled as such. With `field`
 * ({label, maxlength}) it also asks for a line of text. Resolves to the
 * answer: `{ confirmed, value }`.
 */
function askDialog({ title, body, confirmLabel, danger = false, field = null }) {
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialogCount += 1;
    const bodyId = `confirm-body-${dialogCount}`;
    const input = field ? h('input', { type: 'text', maxlength: field.maxlength ?? 500, autocomplete: 'off' }) : null;
    const form = h(
      'form',
      { method: 'dialog', class: 'stack confirm-form', id: `confirm-form-${dialogCount}` },
      h('p', { id: bodyId, class: 'confirm-text' }, body),
      input ? h('label', { class: 'field' }, h('span', {}, field.label), input) : null,
    );
    const cancel = h('button', { type: 'button', class: 'btn', dataset: { answer: 'cancel' }, onclick: () => dialog.close('') }, t('common.cancel'));
    const ok = h(
      'button',
      { type: 'submit', class: danger ? 'btn danger-solid' : 'btn primary', form: form.id, value: 'confirm', dataset: { answer: 'confirm' } },
      confirmLabel,
    );
    const dialog = openDialog({ title, body: form, footer: [cancel, ok], className: 'confirm-dialog' });
    dialog.setAttribute('role', 'alertdialog');
    dialog.setAttribute('aria-describedby', bodyId);
    dialog.returnValue = '';
    dialog.addEventListener('close', () => {
      resolve({ confirmed: dialog.returnValue === 'confirm', value: input ? input.value.trim() : '' });
      if (opener?.isConnected && typeof opener.focus === 'function') opener.focus();
    });
    (input ?? cancel).focus();
  });
}

/** confirmDialog({title, body, confirmLabel, danger}) → Promise<boolean>. */
export async function confirmDialog(options) {
  return (await askDialog(options)).confirmed;
}

/**
 * A form that asks first: its submit waits for the app's confirmation (the
 * form still posts as it is without JavaScript), and `onConfirmed` runs just
 * before it goes.
 */
export function confirmSubmit(form, options, onConfirmed = () => {}) {
  let confirmed = false;
  form.addEventListener('submit', async (event) => {
    if (confirmed) {
      onConfirmed();
      return;
    }
    event.preventDefault();
    if (!(await confirmDialog(options))) return;
    confirmed = true;
    form.requestSubmit();
  });
}

/** Like confirmDialog, with a line of text: the text, or null if cancelled. */
export async function promptDialog({ label, maxlength, ...options }) {
  const answer = await askDialog({ ...options, field: { label, maxlength } });
  return answer.confirmed ? answer.value : null;
}

function statusLine() {
  return h('p', { class: 'form-status', role: 'status' });
}

function showError(el, error) {
  el.textContent = error.message;
  el.className = 'form-status error';
}

/** A search box over users; `onPick(profile)` for a chosen result. */
function userSearch({ label, exclude = () => false, onPick }) {
  const input = h('input', { type: 'search', 'aria-label': label, placeholder: label, autocomplete: 'off' });
  const results = h('ul', { class: 'result-list', 'aria-label': label });
  const run = debounce(async () => {
    const q = input.value.trim();
    if (!q) {
      clear(results);
      return;
    }
    try {
      const users = await get(`/user/search/?q=${encodeURIComponent(q)}`);
      const shown = users.filter((u) => !exclude(u));
      clear(results).append(
        ...(shown.length
          ? shown.map((u) =>
              h(
                'li',
                {},
                h(
                  'button',
                  { type: 'button', class: 'result', onclick: () => onPick(u), dataset: { user: u.username } },
                  avatarWithDot(u.avatar_url, u.is_online),
                  h('span', { class: 'result-main' }, h('strong', {}, shownName(u)), h('small', {}, `@${u.username}`)),
                ),
              ),
            )
          : [h('li', { class: 'muted' }, t('dialog.no_users'))]),
      );
    } catch (error) {
      clear(results).append(h('li', { class: 'form-status error' }, error.message));
    }
  }, 200);
  input.addEventListener('input', run);
  return { el: h('div', { class: 'stack' }, h('label', { class: 'field' }, h('span', {}, label), input), results), input, results };
}

export function newGroupDialog(ctx) {
  const picked = new Map();
  const chips = h('div', { class: 'chips', 'aria-live': 'polite' });
  const renderChips = () =>
    clear(chips).append(
      ...[...picked.values()].map((u) =>
        h(
          'span',
          { class: 'chip' },
          shownName(u),
          h('button', { type: 'button', 'aria-label': t('dialog.remove_chip', { name: shownName(u) }), title: t('dialog.remove_chip', { name: shownName(u) }), onclick: () => (picked.delete(u.id), renderChips()) }, icon('x')),
        ),
      ),
    );
  const search = userSearch({
    label: t('dialog.member_search'),
    exclude: (u) => u.id === ctx.me.id || picked.has(u.id),
    onPick: (u) => {
      picked.set(u.id, u);
      renderChips();
      search.input.value = '';
      clear(search.results);
      search.input.focus();
    },
  });
  const name = h('input', { name: 'name', required: true, maxlength: 80, autocomplete: 'off' });
  const description = h('textarea', { name: 'description', rows: 2, maxlength: 1000 });
  const kind = (value, label, checked) =>
    h('label', { class: 'choice' }, h('input', { type: 'radio', name: 'room_type', value, checked }), h('span', {}, label));
  const status = statusLine();
  const form = h(
    'form',
    { class: 'stack', id: 'new-group-form' },
    h('label', { class: 'field' }, h('span', {}, t('dialog.group_name')), name),
    h('label', { class: 'field' }, h('span', {}, t('dialog.group_description'), ' ', h('em', { class: 'optional' }, t('common.optional'))), description),
    h('fieldset', { class: 'choices' }, h('legend', {}, t('dialog.group_type')), kind('group', t('dialog.type_group'), true), kind('public', t('dialog.type_public'), false)),
    h('div', { class: 'stack' }, h('strong', {}, t('dialog.members')), chips, search.el),
    status,
  );
  const submit = h('button', { type: 'submit', class: 'btn primary', form: 'new-group-form' }, t('dialog.create_group'));
  const dialog = openDialog({ title: t('dialog.new_group_title'), body: form, footer: submit });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    try {
      const room = await post('/chat/rooms/', {
        name: name.value,
        description: description.value,
        room_type: form.elements.room_type.value,
        members: [...picked.keys()],
      });
      dialog.close();
      ctx.openRoom(room.room_id, room);
    } catch (error) {
      showError(status, error);
      submit.disabled = false;
    }
  });
  name.focus();
}

export function newDirectDialog(ctx) {
  const status = statusLine();
  const search = userSearch({
    label: t('dialog.user_search'),
    exclude: (u) => u.id === ctx.me.id,
    onPick: async (u) => {
      try {
        const room = await post(`/chat/direct/${u.id}/`);
        dialog.close();
        ctx.openRoom(room.room_id, { ...room, peer: u });
      } catch (error) {
        showError(status, error);
      }
    },
  });
  const dialog = openDialog({ title: t('dialog.new_direct_title'), body: [search.el, status] });
  search.input.focus();
}

export function publicRoomsDialog(ctx) {
  const input = h('input', { type: 'search', 'aria-label': t('dialog.public_search'), placeholder: t('dialog.public_search') });
  const list = h('ul', { class: 'result-list' });
  const load = debounce(async () => {
    try {
      const rooms = await get(`/chat/rooms/public/?q=${encodeURIComponent(input.value.trim())}`);
      clear(list).append(
        ...(rooms.length
          ? rooms.map((room) => {
              const mine = ctx.isMember(room.room_id);
              return h(
                'li',
                { class: 'member-row' },
                h('span', { class: 'room-icon', 'aria-hidden': 'true' }, '#'),
                h('span', { class: 'result-main' }, h('strong', {}, roomTitle(room)), h('small', {}, tn('room.members', room.member_count ?? 0) + (room.description ? ` · ${room.description}` : ''))),
                h('span', { class: 'member-actions' },
                  h('button', { type: 'button', class: 'btn small', onclick: () => (dialog.close(), ctx.openRoom(room.room_id, room)) }, t('dialog.open')),
                  mine ? null : h('button', { type: 'button', class: 'btn small primary', onclick: async () => {
                    try {
                      await ctx.joinRoom(room.room_id);
                      dialog.close();
                    } catch (error) {
                      toast(error.message);
                    }
                  } }, t('dialog.join')),
                ),
              );
            })
          : [h('li', { class: 'muted' }, t('dialog.public_none'))]),
      );
    } catch (error) {
      clear(list).append(h('li', { class: 'form-status error' }, error.message));
    }
  }, 150);
  input.addEventListener('input', load);
  const dialog = openDialog({ title: t('dialog.public_title'), body: [h('label', { class: 'field' }, h('span', {}, t('dialog.public_search')), input), list] });
  load();
  input.focus();
}

export async function profileDialog(ctx, userId) {
  let profile;
  let blocked = false;
  try {
    const [found, blocks] = await Promise.all([get(`/user/${userId}/profile/`), userId === ctx.me.id ? [] : get('/user/me/blocks/')]);
    profile = found;
    blocked = blocks.some((b) => b.user_id === profile.id);
  } catch (error) {
    toast(error.message);
    return;
  }
  const real = realName(profile);
  const facts = h(
    'dl',
    { class: 'facts' },
    h('dt', {}, t('profile.membership')),
    h('dd', {}, t(`membership.${profile.membership}`)),
    h('dt', {}, t('profile.theme_mode')),
    h('dd', {}, t(`mode.${profile.theme?.mode}`)),
    h('dt', {}, t('profile.joined')),
    h('dd', {}, formatDateTime(new Date(profile.date_joined))),
    localTime(profile) ? [h('dt', {}, t('people.local_time')), h('dd', { class: 'local-time' }, localTime(profile))] : null,
  );
  const actions = [h('a', { class: 'btn', href: `/u/${encodeURIComponent(profile.username)}` }, t('dialog.view_profile'))];
  if (profile.id !== ctx.me.id) {
    actions.push(
      h('button', { type: 'button', class: 'btn primary', onclick: async () => {
        try {
          const room = await post(`/chat/direct/${profile.id}/`);
          dialog.close();
          ctx.openRoom(room.room_id, { ...room, peer: profile });
        } catch (error) {
          toast(error.message);
        }
      } }, t('dialog.send_message')),
      h('button', { type: 'button', class: blocked ? 'btn' : 'btn danger', dataset: { action: blocked ? 'unblock' : 'block' }, onclick: async () => {
        const name = shownName(profile);
        if (!blocked && !(await confirmDialog({ title: t('keys.confirm.block_title', { name }), body: t('dialog.block_confirm', { name }), confirmLabel: t('dialog.block'), danger: true }))) return;
        try {
          if (blocked) await del(`/user/${profile.id}/block/`);
          else await post(`/user/${profile.id}/block/`);
          dialog.close();
          toast(t(blocked ? 'dialog.unblocked' : 'dialog.blocked', { name }));
        } catch (error) {
          toast(error.message);
        }
      } }, blocked ? t('dialog.unblock') : t('dialog.block')),
    );
  }
  const body = h(
    'div',
    { class: 'card-profile' },
    h(
      'div',
      { class: 'profile-top' },
      avatarWithDot(profile.avatar_url, profile.is_online, 'lg'),
      h('div', {}, h('strong', { class: 'p-name' }, shownName(profile)), h('p', { class: 'muted' }, `@${profile.username}${real ? ` · ${real}` : ''}`), h('p', { class: 'card-presence' }, presenceText(profile))),
    ),
    tagPills(profile.tag_details),
    profile.bio ? h('p', { class: 'bio' }, profile.bio) : null,
    facts,
    blocked ? h('p', { class: 'muted blocked-note' }, t('dialog.you_block')) : null,
  );
  const dialog = openDialog({ title: t('dialog.profile_title'), body, footer: actions, className: 'profile-dialog' });
}

/** A room's details: edit, members and their moderation, invites, archive, leave. */
export async function roomInfoDialog(ctx, roomId) {
  let room;
  let participants;
  try {
    [room, participants] = await Promise.all([get(`/chat/${roomId}/`), get(`/chat/${roomId}/participants/`)]);
  } catch (error) {
    toast(error.message);
    return;
  }
  const direct = room.room_type === 'direct';
  const ownerless = !room.owner_id && ctx.me.is_staff;
  const isOwner = room.my_role === 'owner' || ownerless;
  const isModerator = isOwner || room.my_role === 'admin';
  const status = statusLine();
  const body = [];
  const rank = { owner: 3, admin: 2, member: 1 };
  const myRank = ownerless ? 3 : rank[room.my_role] ?? 0;
  const guard = (fn) => async () => {
    try {
      await fn();
      status.textContent = t('common.saved');
      status.className = 'form-status ok';
      dialog.close();
      roomInfoDialog(ctx, roomId);
    } catch (error) {
      showError(status, error);
    }
  };

  if (!direct) {
    const name = h('input', { value: room.name, maxlength: 80, disabled: !isOwner || room.is_archived });
    const description = h('textarea', { rows: 2, maxlength: 1000, disabled: !isOwner || room.is_archived }, room.description);
    body.push(
      h('label', { class: 'field' }, h('span', {}, t('room.name')), name),
      h('label', { class: 'field' }, h('span', {}, t('room.description')), description),
    );
    if (isOwner && !room.is_archived) {
      body.push(h('div', { class: 'row-actions' }, h('button', { type: 'button', class: 'btn primary', onclick: guard(() => patch(`/chat/${roomId}/`, { name: name.value, description: description.value })) }, t('common.save'))));
    }
  }

  const members = participants.participants;
  body.push(h('h3', {}, `${t('dialog.members')} (${members.length})`));
  const memberList = h('ul', { class: 'result-list' });
  for (const m of members) {
    const actions = [];
    const lower = myRank > (rank[m.role] ?? 0) && m.id !== ctx.me.id;
    if (!direct && isModerator && lower) {
      const muted = m.muted_until && Date.parse(m.muted_until) > Date.now();
      actions.push(
        h('button', { type: 'button', class: 'btn small', onclick: guard(() => post(`/chat/${roomId}/members/${m.id}/mute/`, muted ? { muted: false } : { muted: true })) }, muted ? t('room.unmute') : t('room.mute')),
        h('button', { type: 'button', class: 'btn small danger', dataset: { action: 'remove' }, onclick: async () => {
          const name = shownName(m);
          if (await confirmDialog({ title: t('keys.confirm.remove_title', { name }), body: t('room.remove_confirm', { name }), confirmLabel: t('room.remove'), danger: true })) {
            guard(() => del(`/chat/${roomId}/members/${m.id}/`))();
          }
        } }, t('room.remove')),
        h('button', { type: 'button', class: 'btn small danger', dataset: { action: 'ban' }, onclick: async () => {
          const name = shownName(m);
          const reason = await promptDialog({
            title: t('keys.confirm.ban_title', { name }),
            body: t('keys.confirm.ban_body', { name }),
            label: t('keys.confirm.ban_reason'),
            maxlength: 500,
            confirmLabel: t('room.ban'),
            danger: true,
          });
          if (reason === null) return;
          guard(() => post(`/chat/${roomId}/bans/${m.id}/`, reason ? { reason } : {}))();
        } }, t('room.ban')),
      );
    }
    if (!direct && isOwner && m.id !== ctx.me.id && m.role !== 'owner') {
      actions.push(
        h('button', { type: 'button', class: 'btn small', onclick: guard(() => post(`/chat/${roomId}/members/${m.id}/role/`, { role: m.role === 'admin' ? 'member' : 'admin' })) }, m.role === 'admin' ? t('room.make_member') : t('room.make_admin')),
      );
      if (room.owner_id) {
        actions.push(h('button', { type: 'button', class: 'btn small', dataset: { action: 'transfer' }, onclick: async () => {
          const name = shownName(m);
          if (await confirmDialog({ title: t('keys.confirm.transfer_title'), body: t('room.transfer_confirm', { name }), confirmLabel: t('room.transfer'), danger: true })) {
            guard(() => post(`/chat/${roomId}/transfer/`, { user_id: m.id }))();
          }
        } }, t('room.transfer')));
      }
    }
    memberList.append(
      h(
        'li',
        { class: 'member-row' },
        avatar(m.avatar_url),
        h('span', { class: 'result-main' }, h('strong', {}, shownName(m)), h('small', {}, `@${m.username} · ${t(`room.role_${m.role}`)}`)),
        actions.length ? h('span', { class: 'member-actions' }, actions) : null,
      ),
    );
  }
  body.push(memberList);

  if (!direct && isModerator) {
    const bans = h('ul', { class: 'result-list', 'aria-label': t('room.bans') });
    body.push(h('h3', {}, t('room.bans')), bans);
    get(`/chat/${roomId}/bans/`)
      .then((list) => {
        if (!list.length) bans.append(h('li', { class: 'muted' }, t('room.no_bans')));
        for (const ban of list) {
          bans.append(
            h(
              'li',
              { class: 'member-row', dataset: { banned: ban.username } },
              avatar(ban.avatar_url),
              h(
                'span',
                { class: 'result-main' },
                h('strong', {}, ban.display_name || ban.username),
                h('small', {}, `@${ban.username}`),
                h('small', {}, t('room.banned_meta', { by: ban.banned_by ? `@${ban.banned_by}` : '—', time: formatDateTime(new Date(ban.banned_at)) })),
                ban.reason ? h('small', { class: 'ban-reason' }, ban.reason) : null,
              ),
              h('span', { class: 'member-actions' }, h('button', { type: 'button', class: 'btn small', onclick: guard(() => del(`/chat/${roomId}/bans/${ban.user_id}/`)) }, t('room.unban'))),
            ),
          );
        }
      })
      .catch((error) => showError(status, error));
  }

  if (!direct && isModerator && !room.is_archived) {
    const search = userSearch({
      label: t('room.add_member'),
      exclude: (u) => members.some((m) => m.id === u.id),
      onPick: (u) => guard(() => post(`/chat/${roomId}/members/`, { user_id: u.id }))(),
    });
    body.push(search.el);

    const invites = h('ul', { class: 'result-list' });
    body.push(h('h3', {}, t('room.invites')), invites, h('div', { class: 'row-actions' }, h('button', { type: 'button', class: 'btn', onclick: guard(() => post(`/chat/${roomId}/invites/`, {})) }, t('room.invite_create'))));
    get(`/chat/${roomId}/invites/`)
      .then((list) => {
        const active = list.filter((i) => !i.revoked && (!i.expires_at || Date.parse(i.expires_at) > Date.now()) && (i.max_uses == null || i.uses < i.max_uses));
        if (!active.length) invites.append(h('li', { class: 'muted' }, t('room.no_invites')));
        for (const invite of active) {
          invites.append(
            h(
              'li',
              { class: 'member-row' },
              h('span', { class: 'result-main' }, h('span', { class: 'invite-url' }, invite.url), h('small', {}, tn('room.invite_uses', invite.uses))),
              h('span', { class: 'member-actions' },
                h('button', { type: 'button', class: 'btn small', onclick: async () => {
                  await navigator.clipboard?.writeText(invite.url).catch(() => {});
                  toast(t('common.copied'));
                } }, t('common.copy')),
                h('button', { type: 'button', class: 'btn small danger', onclick: guard(() => del(`/chat/${roomId}/invites/${invite.code}/`)) }, t('room.invite_revoke')),
              ),
            ),
          );
        }
      })
      .catch((error) => showError(status, error));
  }

  const footer = [];
  if (!direct && room.my_role) {
    footer.push(h('button', { type: 'button', class: 'btn danger', dataset: { action: 'leave' }, onclick: async () => {
      const name = roomTitle(room);
      if (!(await confirmDialog({ title: t('keys.confirm.leave_title', { name }), body: t('keys.confirm.leave_body'), confirmLabel: t('room.leave'), danger: true }))) return;
      try {
        await post(`/chat/${roomId}/leave/`);
        dialog.close();
      } catch (error) {
        showError(status, error);
      }
    } }, t('room.leave')));
  }
  if (!direct && isOwner) {
    footer.push(h('button', { type: 'button', class: 'btn', onclick: guard(() => post(`/chat/${roomId}/${room.is_archived ? 'unarchive' : 'archive'}/`)) }, room.is_archived ? t('room.unarchive') : t('room.archive')));
  }
  body.push(status);
  const dialog = openDialog({ title: direct ? t('room.kind_direct') : roomTitle(room), body, footer: footer.length ? footer : null });
}
