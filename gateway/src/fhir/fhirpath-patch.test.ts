import { expect } from 'chai';
import { thrownOutcome } from '../test-support/outcome';
import { applyFhirPathPatch, parseFhirPathPatch } from './fhirpath-patch';

const patient = {
  resourceType: 'Patient',
  id: 'p1',
  identifier: [
    { system: 'http://hospital.example/mrn', value: 'MRN-SECRET-1' },
    { system: 'http://hospital.example/mrn', value: 'MRN-SECRET-2' },
  ],
  name: [{ family: 'Secretname', given: ['Ann', 'Beth'] }],
  birthDate: '1970-01-01',
  _birthDate: { extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/patient-birthTime', valueDateTime: '1970-01-01T10:00:00Z' }] },
  deceasedBoolean: false,
};

type Part = Record<string, unknown>;
const operation = (type: string, ...parts: Part[]) => ({ name: 'operation', part: [{ name: 'type', valueCode: type }, ...parts] });
const path = (p: string): Part => ({ name: 'path', valueString: p });
const patch = (...operations: object[]) => ({ resourceType: 'Parameters', parameter: operations });
const apply = (...operations: object[]) => applyFhirPathPatch(patient, parseFhirPathPatch(patch(...operations)));

describe('FHIRPath Patch on a resource (fhirpatch.html, fhirpath engine)', () => {
  it('add: sets a single element, appends to a list, builds a backbone element from parts, takes a choice type from its value', () => {
    const out = apply(
      operation('add', path('Patient'), { name: 'name', valueString: 'gender' }, { name: 'value', valueCode: 'female' }),
      operation('add', path('Patient.name[0]'), { name: 'name', valueString: 'given' }, { name: 'value', valueString: 'Cora' }),
      operation('add', path('Patient'), { name: 'name', valueString: 'identifier' }, { name: 'value', valueIdentifier: { system: 'urn:x', value: 'three' } }),
      operation(
        'add',
        path('Patient'),
        { name: 'name', valueString: 'contact' },
        {
          name: 'value',
          part: [
            { name: 'name', valueHumanName: { family: 'Kin' } },
            { name: 'telecom', valueContactPoint: { system: 'phone', value: '555' } },
          ],
        },
      ),
      operation('add', path('Patient'), { name: 'name', valueString: 'multipleBirth' }, { name: 'value', valueInteger: 2 }),
    );
    expect(out).to.include({ gender: 'female', multipleBirthInteger: 2 });
    expect(out.name).to.deep.equal([{ family: 'Secretname', given: ['Ann', 'Beth', 'Cora'] }]);
    expect(out.identifier).to.have.length(3);
    // telecom repeats: a list even with one part.
    expect((out as Record<string, unknown>).contact).to.deep.equal([{ name: { family: 'Kin' }, telecom: [{ system: 'phone', value: '555' }] }]);
  });

  it('insert: at an index of a list (0 into an empty one); the input is not changed', () => {
    const before = structuredClone(patient);
    const out = apply(
      operation('insert', path('Patient.identifier'), { name: 'index', valueInteger: 1 }, { name: 'value', valueIdentifier: { value: 'middle' } }),
      operation('insert', path('Patient.telecom'), { name: 'index', valueInteger: 0 }, { name: 'value', valueContactPoint: { system: 'email', value: 'a@b' } }),
    );
    expect(out.identifier.map((i) => i.value)).to.deep.equal(['MRN-SECRET-1', 'middle', 'MRN-SECRET-2']);
    expect((out as Record<string, unknown>).telecom).to.deep.equal([{ system: 'email', value: 'a@b' }]);
    expect(patient).to.deep.equal(before);
  });

  it('delete: one element (a primitive with its extensions, a list item chosen by where()); nothing selected is no change; what it empties goes', () => {
    const out = apply(
      operation('delete', path("Patient.identifier.where(value = 'MRN-SECRET-1')")),
      operation('delete', path('Patient.birthDate')),
      operation('delete', path('Patient.photo')),
    );
    expect(out.identifier).to.deep.equal([{ system: 'http://hospital.example/mrn', value: 'MRN-SECRET-2' }]);
    expect(out).to.not.have.any.keys('birthDate', '_birthDate');
    const noExtension = apply(operation('delete', path('Patient.birthDate.extension')));
    expect(noExtension).to.include({ birthDate: '1970-01-01' }).and.not.have.key('_birthDate');
    const noIdentifiers = apply(operation('delete', path('Patient.identifier[0]')), operation('delete', path('Patient.identifier[0]')));
    expect(noIdentifiers).to.not.have.key('identifier');
  });

  it('replace: a primitive (keeping its extensions), a list item, a choice element of another type', () => {
    const out = apply(
      operation('replace', path('Patient.birthDate'), { name: 'value', valueDate: '1971-02-03' }),
      operation('replace', path('Patient.name.given[1]'), { name: 'value', valueString: 'Bea' }),
      operation('replace', path('Patient.deceased'), { name: 'value', valueDateTime: '2020-01-01' }),
    );
    expect(out).to.include({ birthDate: '1971-02-03', deceasedDateTime: '2020-01-01' }).and.not.have.key('deceasedBoolean');
    expect(out._birthDate).to.deep.equal(patient._birthDate);
    expect(out.name[0]?.given).to.deep.equal(['Ann', 'Bea']);
  });

  it('move: within a list, from source to destination', () => {
    const out = apply(operation('move', path('Patient.name.given'), { name: 'source', valueInteger: 1 }, { name: 'destination', valueInteger: 0 }));
    expect(out.name[0]?.given).to.deep.equal(['Beth', 'Ann']);
    const ids = apply(operation('move', path('Patient.identifier'), { name: 'source', valueInteger: 0 }, { name: 'destination', valueInteger: 1 }));
    expect(ids.identifier.map((i) => i.value)).to.deep.equal(['MRN-SECRET-2', 'MRN-SECRET-1']);
  });

  it('a malformed patch is a 400 naming the operation by index, never a path, name or value', () => {
    const cases: Array<[unknown, string]> = [
      [{ resourceType: 'Bundle' }, 'A FHIRPath Patch body is a Parameters resource (fhirpatch.html)'],
      [patch(), 'A FHIRPath Patch holds at least one operation parameter'],
      [patch({ name: 'MRN-SECRET', part: [] }), 'FHIRPath Patch operation 0: each parameter must be an operation with parts'],
      [patch(operation('upsert', path('Patient'))), 'FHIRPath Patch operation 0: its type must be add, insert, delete, replace or move'],
      [patch(operation('delete', path('Patient.birthDate')), operation('replace', path('Patient.birthDate'))), 'FHIRPath Patch operation 1: a replace operation needs a value'],
      [
        patch(operation('delete', path('Patient.birthDate'), { name: 'value', valueString: 'MRN-SECRET' })),
        'FHIRPath Patch operation 0: a delete operation takes the parts type, path only',
      ],
      [patch(operation('delete', path("Patient.name.where(family = 'MRN-SECRET'"))), 'FHIRPath Patch operation 0: its path is not a valid FHIRPath expression'],
      [
        patch(operation('delete', path("Patient.name.where(family.matches('(a+)+$'))"))),
        'FHIRPath Patch operation 0: its path uses a regular-expression function, which this server does not evaluate',
      ],
      [
        patch(operation('insert', path('Patient.identifier'), { name: 'index', valueInteger: -1 }, { name: 'value', valueString: 'x' })),
        'FHIRPath Patch operation 0: its index must be a valueInteger of 0 or more',
      ],
      [
        patch(operation('replace', path('Patient.birthDate'), { name: 'value', valueDate: '1970', _valueDate: { id: 'x' } })),
        'FHIRPath Patch operation 0: extensions on a primitive value (_value[x]) are not supported',
      ],
      [
        patch(operation('replace', path('Patient.birthDate'), { name: 'value', valueDate: '1970', valueString: 'MRN-SECRET' })),
        'FHIRPath Patch operation 0: its value must be one value[x], a resource or parts',
      ],
      [
        patch(operation('add', path('Patient'), { name: 'name', valueString: 'MRN SECRET' }, { name: 'value', valueString: 'x' })),
        'FHIRPath Patch operation 0: its name must be a valueString naming an element',
      ],
    ];
    for (const [body, message] of cases) {
      const e = thrownOutcome(() => parseFhirPathPatch(body));
      expect([e.status, e.message], JSON.stringify(body)).to.deep.equal([400, message]);
    }
  });

  it('an operation that cannot be applied is a 422 naming it by index; nothing of the resource in the message', () => {
    const cases: Array<[object, string]> = [
      [operation('replace', path('Patient.gender'), { name: 'value', valueCode: 'male' }), 'its path selects no element'],
      [operation('replace', path('Patient.identifier'), { name: 'value', valueIdentifier: { value: 'x' } }), 'its path selects several elements; replace needs one'],
      [operation('delete', path('Patient.identifier')), 'its path selects several elements; only one can be deleted'],
      [operation('delete', path('Patient')), 'its path selects the resource itself'],
      [operation('replace', path("'MRN-SECRET-1'"), { name: 'value', valueString: 'x' }), 'its path selects something that is not an element of the resource'],
      [operation('replace', path('Patient.name.given.single()'), { name: 'value', valueString: 'x' }), 'its path cannot be evaluated on the resource'],
      [operation('replace', path('Patient.link.other.resolve()'), { name: 'value', valueString: 'x' }), 'its path cannot be evaluated on the resource'],
      [operation('add', path('Patient'), { name: 'name', valueString: 'birthDate' }, { name: 'value', valueDate: '1999' }), 'the element already has a value (replace it instead)'],
      [
        operation('add', path('Patient'), { name: 'name', valueString: 'deceased' }, { name: 'value', valueDateTime: '1999' }),
        'the element already has a value (replace it instead)',
      ],
      [operation('add', path('Patient'), { name: 'name', valueString: 'noSuchElement' }, { name: 'value', valueString: 'x' }), 'its name is not an element there'],
      [
        operation('add', path('Patient.birthDate'), { name: 'name', valueString: 'id' }, { name: 'value', valueString: 'x' }),
        'its path selects a primitive value, which takes no element',
      ],
      [operation('add', path('Patient'), { name: 'name', valueString: 'multipleBirth' }, { name: 'value', valueString: 'twins' }), 'its value is not of a type the element takes'],
      [
        operation('add', path('Patient'), { name: 'name', valueString: 'contact' }, { name: 'value', part: [{ name: 'nothing', valueString: 'x' }] }),
        'a part of its value names no element there',
      ],
      [operation('insert', path('Patient.identifier'), { name: 'index', valueInteger: 3 }, { name: 'value', valueIdentifier: {} }), 'its index is beyond the end of the list'],
      [
        operation('insert', path("Patient.identifier.where(value = 'MRN-SECRET-1')"), { name: 'index', valueInteger: 0 }, { name: 'value', valueIdentifier: {} }),
        'its path does not select a whole list',
      ],
      [operation('insert', path('Patient.birthDate'), { name: 'index', valueInteger: 0 }, { name: 'value', valueDate: '1999' }), 'its path does not select a list'],
      [
        operation('move', path('Patient.identifier'), { name: 'source', valueInteger: 0 }, { name: 'destination', valueInteger: 2 }),
        'its source or destination is beyond the end of the list',
      ],
      [
        operation('move', path('Patient.telecom'), { name: 'source', valueInteger: 0 }, { name: 'destination', valueInteger: 0 }),
        'its source or destination is beyond the end of the list',
      ],
    ];
    for (const [op, why] of cases) {
      const e = thrownOutcome(() => apply(operation('delete', path('Patient.photo')), op));
      expect([e.status, e.message], JSON.stringify(op)).to.deep.equal([422, `FHIRPath Patch operation 1 cannot be applied: ${why}; nothing was written`]);
      expect(JSON.stringify(e.outcome)).to.not.match(/SECRET|Secretname|1970/);
    }
  });

  it('may not change the resourceType or id (400)', () => {
    const e = thrownOutcome(() => apply(operation('replace', path('Patient.id'), { name: 'value', valueId: 'elsewhere' })));
    expect([e.status, e.message]).to.deep.equal([400, 'A FHIRPath Patch may not change the resourceType or id of the resource']);
  });
});
