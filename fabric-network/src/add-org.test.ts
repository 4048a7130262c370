import { expect } from 'chai';
import { applicationMembers, type ChannelConfigJson, committedDefinitionOf, majorityOf, updateEnvelope, withMember } from './add-org';

describe('add-org: the channel config update', () => {
  it('needs the admins of a MAJORITY of the members: 2 of 3, 3 of 4, 3 of 5', () => {
    expect([1, 2, 3, 4, 5].map(majorityOf)).to.deep.equal([1, 2, 2, 3, 3]);
  });

  const config = (): ChannelConfigJson & { channel_group: { groups: { Orderer: unknown } } } => ({
    channel_group: {
      groups: {
        Application: { groups: { Hospital1MSP: { version: '0' }, Hospital2MSP: { version: '0' }, RegulatorMSP: { version: '0' } } },
        Orderer: { groups: { OrdererMSP: {} } },
      },
    },
  });

  it('adds the organization to the Application group only, leaving the fetched config as it was', () => {
    const original = config();
    const updated = withMember(original, 'Hospital3MSP', { mod_policy: 'Admins', values: { MSP: {} } });
    expect(applicationMembers(original)).to.deep.equal(['Hospital1MSP', 'Hospital2MSP', 'RegulatorMSP']);
    expect(applicationMembers(updated)).to.deep.equal(['Hospital1MSP', 'Hospital2MSP', 'RegulatorMSP', 'Hospital3MSP']);
    expect(updated.channel_group.groups.Application.groups.Hospital3MSP).to.deep.equal({ mod_policy: 'Admins', values: { MSP: {} } });
    expect((updated as ReturnType<typeof config>).channel_group.groups.Orderer).to.deep.equal(original.channel_group.groups.Orderer);
  });

  it('wraps the update as a CONFIG_UPDATE (type 2) envelope for the channel', () => {
    const update = { channel_id: 'hdx', read_set: {}, write_set: {} };
    expect(updateEnvelope('hdx', update)).to.deep.equal({
      payload: { header: { channel_header: { channel_id: 'hdx', type: 2 } }, data: { config_update: update } },
    });
  });
});

describe('add-org: the committed chaincode definition', () => {
  it('reads the sequence, the channel policy reference (from the serialized ApplicationPolicy) and the approvals', () => {
    // ApplicationPolicy { channel_config_policy_reference (field 2) = "/Channel/Application/Endorsement" }, as querycommitted -O json prints it.
    const parameter = Buffer.concat([Buffer.from([0x12, 32]), Buffer.from('/Channel/Application/Endorsement')]).toString('base64');
    const definition = committedDefinitionOf({
      sequence: 2,
      version: '1.0',
      endorsement_plugin: 'escc',
      validation_plugin: 'vscc',
      validation_parameter: parameter,
      collections: {},
      approvals: { Hospital1MSP: true, Hospital3MSP: false },
    });
    expect(definition).to.deep.equal({ sequence: 2, endorsementPolicy: '/Channel/Application/Endorsement', approvals: { Hospital1MSP: true, Hospital3MSP: false } });
  });

  it('refuses an answer without a sequence; a signature policy has no reference', () => {
    expect(() => committedDefinitionOf({ approvals: {} })).to.throw(/without a sequence/);
    expect(committedDefinitionOf({ sequence: 1, validation_parameter: Buffer.from([0x0a, 0x00]).toString('base64') }).endorsementPolicy).to.equal('');
  });
});
