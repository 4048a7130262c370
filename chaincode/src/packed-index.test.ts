import { expect } from 'chai';
import type { Context } from 'fabric-contract-api';
import { INDEX_MARKER, MAX_PAGE_SIZE } from './ledger';
import { PackedIndex, RowRange, flushPackedRows, membersOfRow, packedRows, pageMembers, partialKeyRange, simpleKeyRange } from './packed-index';
import { FakeLedger, identity, rejectsWith } from './test-support/fake-ledger';

const WHO = identity('Hospital1MSP', 'gateway');
const TYPE = 'test.packed';

/** Members are strings; a row before packing is a key [group, member] holding INDEX_MARKER. */
const INDEX: PackedIndex<string, string> = {
  member: (_key, item) => item,
  legacyMember: (key) => key.split('\u0000').slice(-2)[0] ?? '',
};

describe('packed index rows', () => {
  let ledger: FakeLedger;
  const rowKey = (ctx: Context, group: string) => ctx.stub.createCompositeKey(TYPE, [group, ctx.stub.getTxID()]);
  /** One transaction filing `members` under `group`, one add at a time. */
  const file = (group: string, members: string[]) =>
    ledger.invoke(WHO, async (ctx) => {
      for (const member of members) packedRows(ctx).add(INDEX, rowKey(ctx, group), member);
      await flushPackedRows(ctx);
    });
  /** A row as the chaincode wrote it before packing: one key per member. */
  const legacy = (group: string, member: string) => ledger.state.set(`\u0000${TYPE}\u0000${group}\u0000${member}\u0000`, INDEX_MARKER);
  const ranges = (ctx: Context, groups: string[]): RowRange[] => groups.map((group) => partialKeyRange(ctx, TYPE, [group]));
  const page = (groups: string[], pageSize: number, bookmark = '') => ledger.evaluate(WHO, (ctx) => pageMembers(INDEX, ranges(ctx, groups), pageSize, bookmark));
  /** Every member, page after page, and the pages' sizes. */
  const all = async (groups: string[], pageSize: number): Promise<{ members: string[]; sizes: number[] }> => {
    const members: string[] = [];
    const sizes: number[] = [];
    let bookmark = '';
    for (let guard = 0; guard < 1000; guard++) {
      const p = await page(groups, pageSize, bookmark);
      members.push(...p.members.map((m) => m.member));
      sizes.push(p.members.length);
      expect(p.fetchedRecordsCount).to.equal(p.members.length);
      if (p.bookmark === '') return { members, sizes };
      expect(p.bookmark).to.not.equal(bookmark);
      bookmark = p.bookmark;
    }
    throw new Error('paging does not end');
  };

  beforeEach(() => {
    ledger = new FakeLedger();
  });

  describe('writing', () => {
    it("writes one row per key per transaction, listing the transaction's members in order", async () => {
      await file('g', ['a', 'b', 'c']);
      const tx = ledger.lastTx!;
      expect([...tx.writes.keys()]).to.have.length(1);
      const [key] = ledger.keys(TYPE);
      expect(ledger.json(key!)).to.deep.equal(['a', 'b', 'c']);
      expect(membersOfRow(INDEX, key!, ledger.state.get(key!)!)).to.deep.equal(['a', 'b', 'c']);
    });

    it('a second flush rewrites the whole row, never a part of it', async () => {
      await ledger.invoke(WHO, async (ctx) => {
        packedRows(ctx).add(INDEX, rowKey(ctx, 'g'), 'a');
        await flushPackedRows(ctx);
        packedRows(ctx).add(INDEX, rowKey(ctx, 'g'), 'b');
        await flushPackedRows(ctx);
      });
      expect(ledger.json(ledger.keys(TYPE)[0]!)).to.deep.equal(['a', 'b']);
    });

    it("lists a row's members in the index's order when it has one", async () => {
      const sorted: PackedIndex<string, string> = { ...INDEX, compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0) };
      await ledger.invoke(WHO, async (ctx) => {
        for (const member of ['c', 'a', 'b']) packedRows(ctx).add(sorted, rowKey(ctx, 'g'), member);
        await flushPackedRows(ctx);
      });
      expect(ledger.json(ledger.keys(TYPE)[0]!)).to.deep.equal(['a', 'b', 'c']);
    });

    it('refuses to add to a row that is not keyed by the transaction (it could be in committed state)', async () => {
      await ledger
        .invoke(WHO, async (ctx) => packedRows(ctx).add(INDEX, ctx.stub.createCompositeKey(TYPE, ['g', 'other-tx']), 'a'))
        .then(
          () => expect.fail('added'),
          (error: Error) => expect(error.message).to.match(/transaction id/),
        );
    });

    it('removes members (one read, one write per row), deletes an emptied row, and reports 0 for a row that does not exist', async () => {
      await file('g', ['a', 'b', 'c']);
      const [key] = ledger.keys(TYPE);
      let reads = 0;
      await ledger.invoke(WHO, async (ctx) => {
        const getState = ctx.stub.getState.bind(ctx.stub);
        ctx.stub.getState = async (k: string) => {
          reads += 1;
          return getState(k);
        };
        expect(await packedRows(ctx).remove<string>(key!, (m) => m === 'a')).to.equal(1);
        expect(await packedRows(ctx).remove<string>(key!, (m) => m === 'c')).to.equal(1);
        expect(await packedRows(ctx).remove<string>(key!, (m) => m === 'x')).to.equal(0);
        expect(await packedRows(ctx).remove<string>(ctx.stub.createCompositeKey(TYPE, ['g', 'none']), () => true)).to.equal(0);
        await flushPackedRows(ctx);
      });
      expect(reads).to.equal(2);
      expect([...ledger.lastTx!.writes.keys()]).to.deep.equal([key]);
      expect(ledger.json(key!)).to.deep.equal(['b']);
      await ledger.invoke(WHO, async (ctx) => {
        await packedRows(ctx).remove<string>(key!, () => true);
        await flushPackedRows(ctx);
      });
      expect(ledger.keys(TYPE)).to.deep.equal([]);
    });

    it('writes nothing when nothing changed, and nothing for a failed transaction', async () => {
      await ledger.invoke(WHO, async (ctx) => {
        await packedRows(ctx).remove<string>(ctx.stub.createCompositeKey(TYPE, ['g', 'none']), () => true);
        await flushPackedRows(ctx);
      });
      expect(ledger.lastTx!.writes.size).to.equal(0);
      await ledger
        .invoke(WHO, async (ctx) => {
          packedRows(ctx).add(INDEX, rowKey(ctx, 'g'), 'a');
          await flushPackedRows(ctx);
          throw new Error('refused');
        })
        .catch(() => undefined);
      expect(ledger.keys(TYPE)).to.deep.equal([]);
    });
  });

  describe('paging by members', () => {
    /** g: a row of 5 (tx 1), two rows before packing, a row of 3 (tx 2), a row of 1 (tx 3); in key order. */
    const mixed = async (): Promise<string[]> => {
      await file('g', ['a1', 'a2', 'a3', 'a4', 'a5']);
      legacy('g', 'zz-old-1');
      legacy('g', 'zz-old-2');
      await file('g', ['b1', 'b2', 'b3']);
      await file('g', ['c1']);
      const order: string[] = [];
      for (const key of ledger.keys(TYPE)) order.push(...membersOfRow(INDEX, key, ledger.state.get(key)!));
      return order;
    };

    it('pages of any size, smaller or larger than a row, list every member once, in key and row order (old rows mixed in)', async () => {
      const expected = await mixed();
      expect(expected).to.have.length(11);
      expect(expected).to.include.members(['zz-old-1', 'zz-old-2']);
      for (const size of [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, MAX_PAGE_SIZE]) {
        const { members, sizes } = await all(['g'], size);
        expect(members, `pageSize ${size}`).to.deep.equal(expected);
        expect(
          sizes.slice(0, -1).every((n) => n === size),
          `pageSize ${size}`,
        ).to.equal(true);
      }
    });

    it('a page that ends inside a row bookmarks the row and an offset; one that ends with a row, the next row', async () => {
      await file('g', ['a1', 'a2', 'a3']);
      await file('g', ['b1']);
      const [first, second] = ledger.keys(TYPE);
      expect((await page(['g'], 2)).bookmark).to.equal(`2:${first}`);
      expect((await page(['g'], 3)).bookmark).to.equal(second);
      expect((await page(['g'], 4)).bookmark).to.equal('');
      expect((await page(['g'], 2, `2:${first}`)).members.map((m) => m.member)).to.deep.equal(['a3', 'b1']);
      // A bookmark that is only a row key (as before packing) starts at the row's first member.
      expect((await page(['g'], 1, second)).members.map((m) => m.member)).to.deep.equal(['b1']);
    });

    it('runs on across ranges in order; a page ending with a range bookmarks the next range', async () => {
      await file('p', ['p1', 'p2']);
      await file('q', ['q1', 'q2', 'q3']);
      legacy('q', 'q0-old');
      await file('other', ['x1']);
      const inKeyOrder = (group: string) =>
        ledger
          .keys(TYPE)
          .filter((key) => key.startsWith(`\u0000${TYPE}\u0000${group}\u0000`))
          .flatMap((key) => membersOfRow(INDEX, key, ledger.state.get(key)!));
      const { members } = await all(['q', 'p'], 2);
      expect(members).to.deep.equal([...inKeyOrder('q'), ...inKeyOrder('p')]);
      expect([...members].sort()).to.deep.equal(['p1', 'p2', 'q0-old', 'q1', 'q2', 'q3']);
      for (const size of [1, 3, 4, 5, 6, 7]) {
        expect((await all(['q', 'p'], size)).members, `pageSize ${size}`).to.deep.equal(members);
      }
      const boundary = await page(['q', 'p'], 4);
      expect(boundary.bookmark).to.equal(`\u0000${TYPE}\u0000p\u0000`);
      expect((await page(['q', 'p'], 4, boundary.bookmark)).members.map((m) => m.member)).to.deep.equal(['p1', 'p2']);
    });

    it('refuses a bookmark from outside every range, with or without an offset', async () => {
      await file('g', ['a1', 'a2']);
      await file('other', ['x1', 'x2']);
      const [foreign] = ledger.keys(TYPE).filter((key) => key.includes('other'));
      for (const bookmark of [foreign!, `1:${foreign}`, `\u0000${TYPE}\u0000`, `\u0000${TYPE}\u0000h\u0000`, 'x', '1:']) {
        await rejectsWith(page(['g'], 1, bookmark), 'INVALID');
      }
    });

    it('a row removed between two pages is not read; the page goes on with the next row', async () => {
      await file('g', ['a1', 'a2', 'a3']);
      await file('g', ['b1', 'b2']);
      const first = await page(['g'], 2);
      const [key] = ledger.keys(TYPE);
      ledger.state.delete(key!);
      expect((await page(['g'], 2, first.bookmark)).members.map((m) => m.member)).to.deep.equal(['b1', 'b2']);
    });

    it('reads few rows for a page of a large row (rows are read a few at a time at first)', async () => {
      for (let t = 0; t < 20; t++)
        await file(
          'g',
          Array.from({ length: 50 }, (_, i) => `m${t}-${i}`),
        );
      let rowsRead = 0;
      const result = await ledger.evaluate(WHO, (ctx) => {
        const range = partialKeyRange(ctx, TYPE, ['g']);
        const counted: RowRange = {
          ...range,
          rows: async (limit, from) => {
            const p = await range.rows(limit, from);
            rowsRead += p.records.length;
            return p;
          },
        };
        return pageMembers(INDEX, [counted], 20, '');
      });
      expect(result.members).to.have.length(20);
      expect(rowsRead).to.be.at.most(8);
    });

    it('pages a simple-key range too', async () => {
      await ledger.invoke(WHO, async (ctx) => {
        packedRows(ctx).add(INDEX, `t~2024~${ctx.stub.getTxID()}`, 'a');
        packedRows(ctx).add(INDEX, `t~2024~${ctx.stub.getTxID()}`, 'b');
        packedRows(ctx).add(INDEX, `u~2024~${ctx.stub.getTxID()}`, 'u');
        await flushPackedRows(ctx);
      });
      ledger.state.set('t~2023~old', INDEX_MARKER);
      const simple: PackedIndex<string, string> = { member: (_key, item) => item, legacyMember: (key) => key };
      const read = (bookmark: string) => ledger.evaluate(WHO, (ctx) => pageMembers(simple, [simpleKeyRange(ctx, 't~', 't\u007f')], 2, bookmark));
      const one = await read('');
      expect(one.members.map((m) => m.member)).to.deep.equal(['t~2023~old', 'a']);
      expect((await read(one.bookmark)).members.map((m) => m.member)).to.deep.equal(['b']);
      await rejectsWith(read('u~2024~'), 'INVALID');
    });
  });
});
