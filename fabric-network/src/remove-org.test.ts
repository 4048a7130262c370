import { expect } from 'chai';
import type { ChannelConfigJson } from './add-org';
import { gatewayPortOf } from './network';
import { notRemovable, removalSigners, withoutMember } from './remove-org';
import { activeSlots, invalidOrgName, joinedWith, type NetworkOptions, topology } from './topology';

const base: NetworkOptions = { home: '/tmp/hdx-test', portBase: 7000, consensus: 'raft', orderers: 3, batchTimeout: '200ms', maxMessageCount: 100 };

describe('remove-org: the channel config update', () => {
  it('removes the organization from the Application group only, leaving the fetched config as it was', () => {
    const original: ChannelConfigJson & { channel_group: { groups: { Orderer: unknown } } } = {
      channel_group: {
        groups: {
          Application: { groups: { Hospital1MSP: {}, Hospital2MSP: {}, RegulatorMSP: {}, Hospital3MSP: { version: '0' } } },
          Orderer: { groups: { OrdererMSP: {} } },
        },
      },
    };
    const updated = withoutMember(original, 'Hospital3MSP');
    expect(Object.keys(updated.channel_group.groups.Application.groups)).to.deep.equal(['Hospital1MSP', 'Hospital2MSP', 'RegulatorMSP']);
    expect(Object.keys(original.channel_group.groups.Application.groups)).to.include('Hospital3MSP');
    expect((updated as typeof original).channel_group.groups.Orderer).to.deep.equal(original.channel_group.groups.Orderer);
  });

  it('is signed by remaining admins only, as many as MAJORITY Admins of the members before the update needs: 3 of 4 (all three that remain), 3 of 5, 4 of 6; two members cannot remove one', () => {
    expect([2, 3, 4, 5, 6].map(removalSigners)).to.deep.equal([undefined, 2, 3, 3, 4]);
  });
});

describe('remove-org: which organizations, and their slots of the port block', () => {
  it('removes only an organization that joined with add-org, not a founder, not twice', () => {
    const options = { ...base, joined: ['hospital3'] };
    expect(notRemovable(options, 'hospital3')).to.equal(undefined);
    expect(notRemovable(options, 'hospital1')).to.match(/founding member/);
    expect(notRemovable(options, 'regulator')).to.match(/founding member/);
    expect(notRemovable(options, 'clinic4')).to.match(/not an organization that joined/);
    expect(notRemovable({ ...options, removed: ['hospital3'] }, 'hospital3')).to.match(/already removed/);
    // An interrupted removal is resumed.
    expect(notRemovable({ ...options, leaving: ['hospital3'] }, 'hospital3')).to.equal(undefined);
  });

  it('a leaving organization stays in the topology; a removed one is out, and the others keep their ports', () => {
    const both = topology({ ...base, joined: ['hospital3', 'clinic4'] });
    const clinic4 = both.peers.find((p) => p.org === 'clinic4');
    expect(topology({ ...base, joined: ['hospital3', 'clinic4'], leaving: ['hospital3'] }).peers.map((p) => p.org)).to.include('hospital3');
    const after = topology({ ...base, joined: ['hospital3', 'clinic4'], removed: ['hospital3'] });
    expect(after.peers.map((p) => p.org)).to.deep.equal(['hospital1', 'hospital2', 'regulator', 'clinic4']);
    expect(after.orgs.map((o) => o.name)).not.to.include('hospital3');
    expect(after.peers.find((p) => p.org === 'clinic4')).to.deep.equal(clinic4);
    // And its gateway's port, the one its organization DID names.
    expect(['hospital1', 'regulator', 'clinic4'].map((o) => gatewayPortOf(both, o))).to.deep.equal([8080, 8082, 8084]);
    expect(gatewayPortOf(after, 'clinic4')).to.equal(8084);
  });

  it("add-org gives a removed organization's slot (and ports) to the next one, and refuses the removed name", () => {
    const options = { ...base, joined: ['hospital3', 'clinic4'], removed: ['hospital3'] };
    const joined = joinedWith(options, 'clinic5');
    expect(joined).to.deep.equal(['clinic5', 'clinic4']);
    const before = topology({ ...base, joined: ['hospital3'] }).peers.find((p) => p.org === 'hospital3');
    const reused = topology({ ...options, joined: joined ?? [] }).peers.find((p) => p.org === 'clinic5');
    expect(reused?.port).to.equal(before?.port);
    expect(reused?.chaincodePort).to.equal(before?.chaincodePort);
    expect(activeSlots({ ...options, joined: joined ?? [] })).to.deep.equal([
      ['clinic5', 0],
      ['clinic4', 1],
    ]);
    expect(joinedWith({ ...base, joined: ['hospital3', 'clinic4'] }, 'clinic5')).to.equal(undefined);
    expect(invalidOrgName(topology(options), 'hospital3')).to.match(/was removed/);
  });
});
