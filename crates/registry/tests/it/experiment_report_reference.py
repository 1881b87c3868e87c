# Expected numbers of crates/registry/tests/it/experiment_report.rs, computed
# independently of the Rust code from the same rules as its `write_log`.
# Run: python3 -m venv /tmp/sp && /tmp/sp/bin/pip install scipy && /tmp/sp/bin/python <this file>
# Output with numpy 2.4.6, scipy 1.17.1 is quoted in the tests.
import numpy as np, scipy, scipy.stats as st
print("scipy", scipy.__version__, "numpy", np.__version__)
preds=[]
for i in range(40):
    v = ("production" if i%2==0 else "candidate") if i<20 else ("production" if i%4==0 else "candidate")
    p = (i%10)/10+0.05
    preds.append(dict(i=i,v=v,p=p,d=p>=0.5,cold=i<5))
fb=[]
for x in preds:
    i=x['i']
    if i%5==4: continue
    out = None if i%7==6 else (i%3!=0)
    r = 0.5 if out is None else (1.0 if x['d']==out else 0.0)
    if x['v']=='candidate' and out is not None and i%2==1: r = min(1.0, r+0.25)
    fb.append(dict(v=x['v'],d=x['d'],o=out,r=r))
for v in ['production','candidate']:
    P=[x for x in preds if x['v']==v]
    F=[f for f in fb if f['v']==v]
    tp=sum(1 for f in F if f['d'] and f['o'] is True); fp=sum(1 for f in F if f['d'] and f['o'] is False); fn=sum(1 for f in F if (not f['d']) and f['o'] is True)
    r=np.array([f['r'] for f in F]); n=len(r); m=r.mean(); s=r.std(ddof=1); t=st.t.ppf(0.975,n-1)
    print(v, 'req',len(P),'dec',np.mean([x['d'] for x in P]),'meanp',repr(np.mean([x['p'] for x in P])),'cold',np.mean([x['cold'] for x in P]))
    print('  fb',len(F),'with',sum(1 for f in F if f['o'] is not None),'tp fp fn',tp,fp,fn,'prec',tp/(tp+fp) if tp+fp else None,'rec',tp/(tp+fn) if tp+fn else None)
    print('  rewards',list(r)); print('  mean',repr(m),'sd',repr(s),'ci',repr(m-t*s/np.sqrt(n)),repr(m+t*s/np.sqrt(n)))
a=[f['r'] for f in fb if f['v']=='production']; b=[f['r'] for f in fb if f['v']=='candidate']
res=st.ttest_ind(b,a,equal_var=False); print('welch candidate vs production', repr(res.statistic), repr(res.pvalue), repr(getattr(res,'df',None)))
# shadow on production's predictions
sh=[]
for x in preds:
    if x['v']!='production': continue
    q = x['p']+0.1 if x['i']%3==0 else x['p']-0.05
    sh.append((q>=0.5)==x['d']); 
diffs=[abs((x['p']+0.1 if x['i']%3==0 else x['p']-0.05)-x['p']) for x in preds if x['v']=='production']
print('shadow agree',np.mean(sh),'mad',repr(np.mean(diffs)), 'n', len(sh))
