export interface PagingOptions {
  baseUrl: string;
  path: string;
  query: Record<string, string[]>;
  total?: number;
  offset?: number;
  count?: number;
  /** Query parameters of the next page when the source pages by bookmark. */
  next?: Record<string, string>;
}

export type BundleLink = { relation: string; url: string };

/** self, next and previous links, built from the request's own query. */
export function pagingLinks(opts: PagingOptions): BundleLink[] {
  const url = (overrides: Record<string, string>): string => {
    const params = new URLSearchParams();
    for (const [k, vs] of Object.entries(opts.query)) if (!(k in overrides)) for (const v of vs) params.append(k, v);
    for (const [k, v] of Object.entries(overrides)) params.set(k, v);
    const qs = params.toString();
    return `${opts.baseUrl}${opts.path}${qs ? `?${qs}` : ''}`;
  };
  const link = [{ relation: 'self', url: url({}) }];
  if (opts.next) link.push({ relation: 'next', url: url(opts.next) });
  if (opts.offset !== undefined && opts.count !== undefined && opts.total !== undefined) {
    if (opts.offset + opts.count < opts.total) link.push({ relation: 'next', url: url({ _getpagesoffset: String(opts.offset + opts.count), _count: String(opts.count) }) });
    if (opts.offset > 0) link.push({ relation: 'previous', url: url({ _getpagesoffset: String(Math.max(0, opts.offset - opts.count)), _count: String(opts.count) }) });
  }
  return link;
}

/** A searchset Bundle with self/next/previous links built from the request's own query. */
export function searchset(
  opts: PagingOptions & {
    resources: ReadonlyArray<Record<string, unknown>>;
    /** Resources brought in by _include / _revinclude (search mode include). */
    included?: ReadonlyArray<Record<string, unknown>>;
    /** Extensions for an entry (e.g. the commitment opening key disclosed to another member). */
    entryExtension?: (resource: Record<string, unknown>) => Array<Record<string, unknown>> | undefined;
    /** `_total=none`: the total is left out of the Bundle (paging links still use it). */
    hideTotal?: boolean;
    /** `_summary=count`: the total only, no entries and no paging links. */
    countOnly?: boolean;
  },
): Record<string, unknown> {
  if (opts.countOnly === true) {
    return { resourceType: 'Bundle', type: 'searchset', total: opts.total ?? 0, link: pagingLinks({ baseUrl: opts.baseUrl, path: opts.path, query: opts.query }) };
  }
  const link = pagingLinks(opts);
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    ...(opts.total !== undefined && opts.hideTotal !== true ? { total: opts.total } : {}),
    link,
    entry: [...opts.resources.map((r) => ({ r, mode: 'match' })), ...(opts.included ?? []).map((r) => ({ r, mode: 'include' }))].map(({ r, mode }) => {
      const extension = opts.entryExtension?.(r);
      return {
        ...(extension && extension.length > 0 ? { extension } : {}),
        fullUrl: `${opts.baseUrl}/${String(r.resourceType)}/${String(r.id)}`,
        resource: r,
        search: { mode },
      };
    }),
  };
}

/** A history Bundle: each version with its interaction (PUT for a version, DELETE for a deletion). */
export function historyBundle(
  baseUrl: string,
  versions: ReadonlyArray<{ resource: Record<string, unknown>; deleted: boolean; versionId: string }>,
  page?: { total: number; link: BundleLink[] },
): Record<string, unknown> {
  return {
    resourceType: 'Bundle',
    type: 'history',
    total: page?.total ?? versions.length,
    ...(page ? { link: page.link } : {}),
    entry: versions.map(({ resource: r, deleted, versionId }) => ({
      fullUrl: `${baseUrl}/${String(r.resourceType)}/${String(r.id)}`,
      ...(deleted ? {} : { resource: r }),
      request: {
        method: deleted ? 'DELETE' : versionId === '1' ? 'POST' : 'PUT',
        url: deleted || versionId !== '1' ? `${String(r.resourceType)}/${String(r.id)}` : String(r.resourceType),
      },
      response: { status: deleted ? '204' : versionId === '1' ? '201' : '200', etag: `W/"${versionId}"` },
    })),
  };
}
