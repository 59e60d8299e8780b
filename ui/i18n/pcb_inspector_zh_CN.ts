<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="zh_CN">
<context>
    <name>AlarmBanner</name>
    <message>
        <location filename="../operator_screen.py" line="449"/>
        <source>ACKNOWLEDGE</source>
        <translation>确认报警</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="458"/>
        <source>+%1 more</source>
        <translation>另有 %1 条</translation>
    </message>
</context>
<context>
    <name>Alarms</name>
    <message>
        <location filename="../alarms.py" line="48"/>
        <source>Camera lost</source>
        <extracomment>Reasons that mean &quot;not ready yet&quot;, not a fault: no alarm for them. A free-running camera reopened by START after STOP waits for its first frame: raised as &quot;Camera lost&quot;, that normal restart needed an acknowledgement. NOT READY because a person asked for it (STOP on the Line screen; ui.controller sets it): their own action is no alarm. Raised as &quot;Inspection failed&quot;, it stayed after START until acknowledged, and taught operators to acknowledge banners unread. Alarm title per component (translated at display time, see `alarm_title`).</extracomment>
        <translation>相机断开</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="49"/>
        <source>PLC down</source>
        <translation>PLC 断开</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="50"/>
        <source>Model failed</source>
        <translation>模型故障</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="51"/>
        <source>Disk low</source>
        <translation>磁盘空间不足</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="52"/>
        <source>Database error</source>
        <translation>数据库故障</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="53"/>
        <source>Inspection failed</source>
        <translation>检测失败</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="54"/>
        <source>Recipe problem</source>
        <translation>配方问题</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="55"/>
        <source>Board alignment failed</source>
        <translation>板对位失败</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="56"/>
        <source>Camera image unusable</source>
        <translation>相机图像不可用</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="57"/>
        <source>Same defect, board after board</source>
        <translation>连续多块板同一处缺陷</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="58"/>
        <source>Camera calibration and optics</source>
        <translation>相机标定与光学</translation>
    </message>
    <message>
        <location filename="../alarms.py" line="60"/>
        <source>Fault: %1</source>
        <translation>故障：%1</translation>
    </message>
</context>
<context>
    <name>AuditScreen</name>
    <message>
        <location filename="../audit_screen.py" line="132"/>
        <source>All users</source>
        <translation>所有用户</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="133"/>
        <source>All actions</source>
        <translation>所有操作</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="149"/>
        <source>Loading…</source>
        <translation>加载中…</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="162"/>
        <source>%1 event(s)</source>
        <translation>%1 条事件</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="164"/>
        <source>(newest %1; narrow the filter or export)</source>
        <translation>（仅显示最新 %1 条；请缩小筛选范围或导出）</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="188"/>
        <source>Query failed: %1</source>
        <translation>查询失败：%1</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="192"/>
        <source>Verifying the audit chain…</source>
        <translation>正在校验审计链…</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="201"/>
        <source>Audit chain intact: %1 events, %2 signatures valid</source>
        <translation>审计链完整：%1 条事件，%2 个签名有效</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="208"/>
        <source>Audit chain BROKEN (%1 problems). First: %2</source>
        <translation>审计链已被破坏（%1 个问题）。第一个：%2</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="216"/>
        <source>Verification failed: %1</source>
        <translation>校验失败：%1</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="220"/>
        <source>Export audit trail</source>
        <translation>导出审计记录</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="228"/>
        <source>%1 event(s) written to %2</source>
        <translation>已将 %1 条事件写入 %2</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="232"/>
        <source>Export failed: %1</source>
        <translation>导出失败：%1</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="247"/>
        <source>Last 24 h</source>
        <translation>最近 24 小时</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="248"/>
        <source>Last 7 days</source>
        <translation>最近 7 天</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="249"/>
        <source>Last 31 days</source>
        <translation>最近 31 天</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="250"/>
        <source>All time</source>
        <translation>全部时间</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="256"/>
        <source>Search</source>
        <translation>查询</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="257"/>
        <source>Verify chain</source>
        <translation>校验审计链</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="258"/>
        <source>Export CSV</source>
        <translation>导出 CSV</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="261"/>
        <source>Time</source>
        <translation>时间</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="262"/>
        <source>User</source>
        <translation>用户</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="263"/>
        <source>Source</source>
        <translation>来源</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="264"/>
        <source>Action</source>
        <translation>操作</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="265"/>
        <source>Target</source>
        <translation>对象</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="266"/>
        <source>Before</source>
        <translation>修改前</translation>
    </message>
    <message>
        <location filename="../audit_screen.py" line="267"/>
        <source>After</source>
        <translation>修改后</translation>
    </message>
</context>
<context>
    <name>CalibrationWizard</name>
    <message>
        <location filename="../calibration_wizard.py" line="460"/>
        <source>nobody is logged in</source>
        <translation>无人登录</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="461"/>
        <source>Only an engineer or admin may %1; %2</source>
        <translation>只有工程师或管理员可以%1；%2</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="473"/>
        <source>%1 corners, board %2 x %3 mm</source>
        <translation>%1 个角点，标定板 %2 x %3 mm</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="485"/>
        <source>Pattern changed: captured views cleared</source>
        <translation>图案已更改：已清除采集的视图</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="503"/>
        <source>Frame %1 · %2 x %3 px · %4 corners</source>
        <translation>帧 %1 · %2 x %3 px · %4 个角点</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="517"/>
        <location filename="../calibration_wizard.py" line="824"/>
        <source>Waiting for a camera frame…</source>
        <translation>等待相机图像…</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="520"/>
        <source>FOUND</source>
        <translation>已找到</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="520"/>
        <source>NONE</source>
        <translation>未找到</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="529"/>
        <source>✔  Good view: tap CAPTURE VIEW</source>
        <translation>✔  视图良好：请点击“采集视图”</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="539"/>
        <source>frame not measured: %1</source>
        <translation>图像未能测量：%1</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="541"/>
        <source>pattern not found</source>
        <translation>未找到图案</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="545"/>
        <source>covers %1 of the frame (&lt; %2): move the target closer</source>
        <translation>仅占画面 %1（&lt; %2）：请将标定板移近</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="551"/>
        <source>blurred: edges %1 px wide (&gt; %2 px)</source>
        <translation>模糊：边缘宽 %1 px（&gt; %2 px）</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="561"/>
        <source>reprojection error %1 px (&gt; %2 px)</source>
        <translation>重投影误差 %1 px（&gt; %2 px）</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="572"/>
        <location filename="../calibration_wizard.py" line="632"/>
        <source>calibrate the camera</source>
        <translation>标定相机</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="576"/>
        <source>No camera frame yet</source>
        <translation>尚无相机图像</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="581"/>
        <source>View not kept: %1</source>
        <translation>视图未保留：%1</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="584"/>
        <source>View not kept: measured with another pattern; wait for the next frame</source>
        <translation>视图未保留：按其他图案测量；请等待下一帧</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="590"/>
        <source>View not kept: %1 px differs from the captured views&apos; %2 px</source>
        <translation>视图未保留：%1 px 与已采集视图的 %2 px 不同</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="604"/>
        <source>%1 kept (coverage %2, edges %3 px)</source>
        <translation>已保留 %1（覆盖 %2，边缘 %3 px）</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="622"/>
        <source>Views %1 / %2 · frame cells reached %3</source>
        <translation>视图 %1 / %2 · 画面格覆盖 %3</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="637"/>
        <source>Capture at least %1 views first (%2 so far)</source>
        <translation>请先采集至少 %1 个视图（目前 %2 个）</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="648"/>
        <source>Computing the intrinsics from %1 views…</source>
        <translation>正在根据 %1 个视图计算内参…</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="686"/>
        <source>Fit failed</source>
        <translation>拟合失败</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="697"/>
        <source>RMS %1 px · fx %2 fy %3 · cx %4 cy %5 · %6 views</source>
        <translation>RMS %1 px · fx %2 fy %3 · cx %4 cy %5 · %6 个视图</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="709"/>
        <source>%1: rejected, %2</source>
        <translation>%1：已拒绝，%2</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="715"/>
        <source>Stored as calibration %1 (active from the next station start)</source>
        <translation>已保存为标定 %1（下次工位启动时生效）</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="721"/>
        <source>Computed; not stored (no records database)</source>
        <translation>已计算；未保存（无记录数据库）</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="734"/>
        <source>Active calibrations: no records database</source>
        <translation>当前标定：无记录数据库</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="739"/>
        <source>Active calibrations: cannot read (%1)</source>
        <translation>当前标定：无法读取（%1）</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="748"/>
        <source>reference: none</source>
        <translation>参考图：无</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="749"/>
        <source>Active calibrations: </source>
        <translation>当前标定：</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="754"/>
        <source>reference %1</source>
        <translation>参考图 %1</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="755"/>
        <source>intrinsics</source>
        <translation>内参</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="755"/>
        <source>scale</source>
        <translation>比例</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="755"/>
        <source>threshold</source>
        <translation>阈值位置</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="760"/>
        <source>%1: none</source>
        <translation>%1：无</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="770"/>
        <source>%1 #%2 by %3 at %4</source>
        <translation>%1 #%2，%3 于 %4</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="816"/>
        <source>Pattern</source>
        <translation>图案</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="817"/>
        <source>PATTERN</source>
        <translation>图案</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="818"/>
        <source>COVERAGE</source>
        <translation>覆盖率</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="819"/>
        <source>SHARPNESS</source>
        <translation>清晰度</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="820"/>
        <source>FRAME COVERAGE OF CAPTURED VIEWS</source>
        <translation>已采集视图的画面覆盖</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="821"/>
        <source>CAPTURE VIEW</source>
        <translation>采集视图</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="822"/>
        <source>Clear views</source>
        <translation>清除视图</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="823"/>
        <source>COMPUTE</source>
        <translation>计算</translation>
    </message>
    <message>
        <location filename="../calibration_wizard.py" line="828"/>
        <source>Per-view reprojection errors appear here after COMPUTE</source>
        <translation>点击“计算”后此处显示每个视图的重投影误差</translation>
    </message>
</context>
<context>
    <name>ChartsScreen</name>
    <message>
        <location filename="../charts.py" line="117"/>
        <source>Loading…</source>
        <translation>加载中…</translation>
    </message>
    <message>
        <location filename="../charts.py" line="169"/>
        <source>Yield per hour (last 24 h)</source>
        <translation>每小时良率（最近 24 小时）</translation>
    </message>
    <message>
        <location filename="../charts.py" line="170"/>
        <location filename="../charts.py" line="182"/>
        <source>yield %</source>
        <translation>良率 %</translation>
    </message>
    <message>
        <location filename="../charts.py" line="181"/>
        <source>Yield per shift</source>
        <translation>每班次良率</translation>
    </message>
    <message>
        <location filename="../charts.py" line="192"/>
        <source>Defects by class (Pareto)</source>
        <translation>缺陷类别（帕累托）</translation>
    </message>
    <message>
        <location filename="../charts.py" line="193"/>
        <source>defects</source>
        <translation>缺陷</translation>
    </message>
    <message>
        <location filename="../charts.py" line="220"/>
        <source>False-call rate per day (reviewed defects)</source>
        <translation>每日误报率（已复判缺陷）</translation>
    </message>
    <message>
        <location filename="../charts.py" line="221"/>
        <source>false calls %</source>
        <translation>误报 %</translation>
    </message>
    <message>
        <location filename="../charts.py" line="231"/>
        <source>Reviewed: %1 boards · false calls %2 % · missed %3 · escapes %4</source>
        <translation>已复判：%1 块板 · 误报 %2 % · 漏检 %3 · 流出 %4</translation>
    </message>
    <message>
        <location filename="../charts.py" line="268"/>
        <source>Last 7 days</source>
        <translation>最近 7 天</translation>
    </message>
    <message>
        <location filename="../charts.py" line="269"/>
        <source>Last 30 days</source>
        <translation>最近 30 天</translation>
    </message>
    <message>
        <location filename="../charts.py" line="271"/>
        <source>Refresh</source>
        <translation>刷新</translation>
    </message>
</context>
<context>
    <name>DefectClass</name>
    <message>
        <location filename="../labels.py" line="19"/>
        <source>open</source>
        <translation>开路</translation>
    </message>
    <message>
        <location filename="../labels.py" line="20"/>
        <source>short</source>
        <translation>短路</translation>
    </message>
    <message>
        <location filename="../labels.py" line="21"/>
        <source>mousebite</source>
        <translation>鼠咬</translation>
    </message>
    <message>
        <location filename="../labels.py" line="22"/>
        <source>spur</source>
        <translation>毛刺</translation>
    </message>
    <message>
        <location filename="../labels.py" line="23"/>
        <source>copper</source>
        <translation>余铜</translation>
    </message>
    <message>
        <location filename="../labels.py" line="24"/>
        <source>pin-hole</source>
        <translation>针孔</translation>
    </message>
</context>
<context>
    <name>FirstAdminDialog</name>
    <message>
        <location filename="../users_screen.py" line="34"/>
        <source>First start: create the administrator</source>
        <translation>首次启动：创建管理员</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="42"/>
        <source>Create administrator</source>
        <translation>创建管理员</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="46"/>
        <source>No user exists yet. Choose the administrator&apos;s name and secret.</source>
        <translation>尚无用户。请设置管理员的用户名和密码。</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="48"/>
        <source>PIN or password (at least 4 characters)</source>
        <translation>PIN 或密码（至少 4 位）</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="50"/>
        <source>Repeat</source>
        <translation>再次输入</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="57"/>
        <source>The two entries differ</source>
        <translation>两次输入不一致</translation>
    </message>
</context>
<context>
    <name>HistoryScreen</name>
    <message>
        <location filename="../history_screen.py" line="155"/>
        <location filename="../history_screen.py" line="348"/>
        <location filename="../history_screen.py" line="350"/>
        <source>All recipes</source>
        <translation>全部配方</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="182"/>
        <source>Loading…</source>
        <translation>加载中…</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="228"/>
        <location filename="../history_screen.py" line="344"/>
        <source>PASS</source>
        <translation>合格</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="228"/>
        <location filename="../history_screen.py" line="344"/>
        <source>REJECT</source>
        <translation>不合格</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="249"/>
        <source>%1–%2 of %3 matching</source>
        <translation>第 %1–%2 条，共 %3 条</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="284"/>
        <location filename="../history_screen.py" line="354"/>
        <source>Export CSV</source>
        <translation>导出 CSV</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="296"/>
        <source>Exporting to %1…</source>
        <translation>正在导出到 %1…</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="306"/>
        <source>%1 rows written to %2</source>
        <translation>已写入 %1 行到 %2</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="311"/>
        <source>Export to %1 failed: %2</source>
        <translation>导出到 %1 失败：%2</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="336"/>
        <source>This shift</source>
        <translation>本班次</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="337"/>
        <source>Last hour</source>
        <translation>最近 1 小时</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="338"/>
        <source>Last 24 h</source>
        <translation>最近 24 小时</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="339"/>
        <source>Last 7 days</source>
        <translation>最近 7 天</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="340"/>
        <source>All time</source>
        <translation>全部时间</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="344"/>
        <source>All verdicts</source>
        <translation>全部结果</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="346"/>
        <source>All classes</source>
        <translation>全部类别</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="351"/>
        <source>Serial (ABC* = prefix)</source>
        <translation>序列号（ABC* = 前缀）</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="352"/>
        <source>Unreviewed only</source>
        <translation>仅未复判</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="353"/>
        <source>Search</source>
        <translation>查询</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="355"/>
        <source>◀ Newer</source>
        <translation>◀ 更新</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="356"/>
        <source>Older ▶</source>
        <translation>更早 ▶</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="357"/>
        <source>Open / review</source>
        <translation>打开 / 复判</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="360"/>
        <source>Time</source>
        <translation>时间</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="361"/>
        <source>Serial</source>
        <translation>序列号</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="362"/>
        <source>Verdict</source>
        <translation>结果</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="363"/>
        <source>Defects</source>
        <translation>缺陷数</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="364"/>
        <source>Classes</source>
        <translation>类别</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="365"/>
        <source>Recipe</source>
        <translation>配方</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="366"/>
        <source>Cycle ms</source>
        <translation>节拍 ms</translation>
    </message>
    <message>
        <location filename="../history_screen.py" line="367"/>
        <source>Reviewed</source>
        <translation>已复判</translation>
    </message>
</context>
<context>
    <name>Lamp</name>
    <message>
        <location filename="../operator_screen.py" line="285"/>
        <source>no report</source>
        <translation>无状态</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="283"/>
        <location filename="../operator_screen.py" line="332"/>
        <source>OK</source>
        <translation>正常</translation>
    </message>
    <message>
        <location filename="../labels.py" line="96"/>
        <source>%1, %2 written, backlog %3, spool %4</source>
        <extracomment>Status-lamp and alarm lines the core writes (inspector/health.py users), as English patterns and translatable templates; %1, %2 ... are the captured parts (names, numbers, addresses), kept as they are. A line that matches no pattern (an exception text, say) is shown unchanged.</extracomment>
        <translation>%1，已写入 %2，积压 %3，缓存 %4</translation>
    </message>
    <message>
        <location filename="../labels.py" line="98"/>
        <source>%1 GB free</source>
        <translation>剩余 %1 GB</translation>
    </message>
    <message>
        <location filename="../labels.py" line="99"/>
        <source>%1 MB free</source>
        <translation>剩余 %1 MB</translation>
    </message>
    <message>
        <location filename="../labels.py" line="100"/>
        <source>%1 MB free &lt; %2 MB floor</source>
        <translation>剩余 %1 MB &lt; 下限 %2 MB</translation>
    </message>
    <message>
        <location filename="../labels.py" line="101"/>
        <source>off (free-run)</source>
        <translation>关闭（自由运行）</translation>
    </message>
    <message>
        <location filename="../labels.py" line="102"/>
        <source>server %1</source>
        <translation>服务器 %1</translation>
    </message>
    <message>
        <location filename="../labels.py" line="103"/>
        <source>client %1</source>
        <translation>客户端 %1</translation>
    </message>
    <message>
        <location filename="../labels.py" line="106"/>
        <source>%1 (fallback: none of %2 found)</source>
        <translation>%1（回退：未找到 %2）</translation>
    </message>
    <message>
        <location filename="../labels.py" line="108"/>
        <source>starting</source>
        <translation>正在启动</translation>
    </message>
    <message>
        <location filename="../labels.py" line="109"/>
        <source>loading</source>
        <translation>正在加载</translation>
    </message>
    <message>
        <location filename="../labels.py" line="110"/>
        <source>stopped by operator</source>
        <translation>已由操作员停止</translation>
    </message>
    <message>
        <location filename="../labels.py" line="111"/>
        <source>opened, waiting for the first frame</source>
        <translation>已打开，等待第一帧</translation>
    </message>
    <message>
        <location filename="../labels.py" line="112"/>
        <source>missed trigger %1</source>
        <translation>漏触发 %1</translation>
    </message>
    <message>
        <location filename="../labels.py" line="113"/>
        <source>stalled %1</source>
        <translation>停滞 %1</translation>
    </message>
    <message>
        <location filename="../labels.py" line="114"/>
        <source>lost: %1; reconnecting</source>
        <translation>丢失：%1；正在重连</translation>
    </message>
    <message>
        <location filename="../labels.py" line="117"/>
        <source>cannot open (attempt %1, retry in %2 s): %3</source>
        <translation>无法打开（第 %1 次，%2 秒后重试）：%3</translation>
    </message>
    <message>
        <location filename="../labels.py" line="119"/>
        <source>PLC link down</source>
        <translation>PLC 连接断开</translation>
    </message>
    <message>
        <location filename="../labels.py" line="122"/>
        <source>waiting for the PLC heartbeat (CONTROL b6 toggling)</source>
        <translation>等待 PLC 心跳（CONTROL b6 翻转）</translation>
    </message>
    <message>
        <location filename="../labels.py" line="126"/>
        <source>PLC heartbeat lost (no toggle within %1 s)</source>
        <translation>PLC 心跳丢失（%1 秒内无翻转）</translation>
    </message>
    <message>
        <location filename="../labels.py" line="128"/>
        <source>second PLC master: %1</source>
        <translation>第二个 PLC 主站：%1</translation>
    </message>
    <message>
        <location filename="../labels.py" line="129"/>
        <source>cannot run: %1</source>
        <translation>无法运行：%1</translation>
    </message>
    <message>
        <location filename="../labels.py" line="132"/>
        <source>writer behind: %1 of %2 results queued</source>
        <translation>写入滞后：%2 个中有 %1 个结果在排队</translation>
    </message>
    <message>
        <location filename="../labels.py" line="136"/>
        <source>writer queue full (%1): results spilled to the spool</source>
        <translation>写入队列已满（%1）：结果已转存到缓存</translation>
    </message>
    <message>
        <location filename="../labels.py" line="138"/>
        <source>archive write failed: %1</source>
        <translation>归档写入失败：%1</translation>
    </message>
    <message>
        <location filename="../labels.py" line="142"/>
        <source>focus: check the lens focus and the board height (sharpness %1% below the baseline, limit %2%)</source>
        <translation>对焦：请检查镜头对焦和板的高度（清晰度比基准低 %1%，限值 %2%）</translation>
    </message>
    <message>
        <location filename="../labels.py" line="149"/>
        <source>same defect on %1 boards in a row at x %2, y %3 px (%4): clean the lens, or check the process upstream</source>
        <translation>连续 %1 块板在 x %2、y %3 像素处出现相同缺陷（%4）：请清洁镜头，或检查上游工序</translation>
    </message>
    <message>
        <location filename="../labels.py" line="157"/>
        <source>same defect on %1 boards in a row at x %2, y %3 px of the board (%4): check the process upstream</source>
        <translation>连续 %1 块板在板上 x %2、y %3 像素处出现相同缺陷（%4）：请检查上游工序</translation>
    </message>
    <message>
        <location filename="../labels.py" line="161"/>
        <source>%1 boards in a row: %2</source>
        <translation>连续 %1 块板：%2</translation>
    </message>
</context>
<context>
    <name>Lamps</name>
    <message>
        <location filename="../operator_screen.py" line="43"/>
        <source>Camera</source>
        <translation>相机</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="44"/>
        <source>Detector</source>
        <translation>检测器</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="45"/>
        <source>PLC</source>
        <translation>PLC</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="46"/>
        <source>Database</source>
        <translation>数据库</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="47"/>
        <source>Disk</source>
        <translation>磁盘</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="48"/>
        <source>Inspection</source>
        <translation>检测</translation>
    </message>
</context>
<context>
    <name>LoginDialog</name>
    <message>
        <location filename="../login.py" line="60"/>
        <location filename="../login.py" line="62"/>
        <location filename="../login.py" line="74"/>
        <source>Log in</source>
        <translation>登录</translation>
    </message>
    <message>
        <location filename="../login.py" line="69"/>
        <location filename="../login.py" line="86"/>
        <source>PIN or password</source>
        <translation>PIN 或密码</translation>
    </message>
    <message>
        <location filename="../login.py" line="77"/>
        <source>Cancel</source>
        <translation>取消</translation>
    </message>
    <message>
        <location filename="../login.py" line="84"/>
        <source>User</source>
        <translation>用户</translation>
    </message>
    <message>
        <location filename="../login.py" line="99"/>
        <source>Checking…</source>
        <translation>校验中…</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <location filename="../app.py" line="154"/>
        <source>Station error: %1</source>
        <translation>工位错误：%1</translation>
    </message>
    <message>
        <location filename="../app.py" line="205"/>
        <source>open %1</source>
        <translation>打开“%1”</translation>
    </message>
    <message>
        <location filename="../app.py" line="248"/>
        <source>Log in to %1</source>
        <translation>请登录后%1</translation>
    </message>
    <message>
        <location filename="../app.py" line="252"/>
        <source>%1 may not %2</source>
        <translation>%1 无权%2</translation>
    </message>
    <message>
        <location filename="../app.py" line="283"/>
        <source>start the station</source>
        <translation>启动工位</translation>
    </message>
    <message>
        <location filename="../app.py" line="288"/>
        <source>stop the station</source>
        <translation>停止工位</translation>
    </message>
    <message>
        <location filename="../app.py" line="296"/>
        <source>change the recipe</source>
        <translation>切换配方</translation>
    </message>
    <message>
        <location filename="../app.py" line="313"/>
        <source>acknowledge alarms</source>
        <translation>确认报警</translation>
    </message>
    <message>
        <location filename="../app.py" line="394"/>
        <source>Line</source>
        <translation>产线</translation>
    </message>
    <message>
        <location filename="../app.py" line="395"/>
        <source>History</source>
        <translation>历史</translation>
    </message>
    <message>
        <location filename="../app.py" line="396"/>
        <source>Review</source>
        <translation>复判</translation>
    </message>
    <message>
        <location filename="../app.py" line="397"/>
        <source>Charts</source>
        <translation>图表</translation>
    </message>
    <message>
        <location filename="../app.py" line="398"/>
        <source>Recipe</source>
        <translation>配方</translation>
    </message>
    <message>
        <location filename="../app.py" line="399"/>
        <source>Calibrate</source>
        <translation>标定</translation>
    </message>
    <message>
        <location filename="../app.py" line="400"/>
        <source>Model</source>
        <translation>模型</translation>
    </message>
    <message>
        <location filename="../app.py" line="401"/>
        <source>Users</source>
        <translation>用户</translation>
    </message>
    <message>
        <location filename="../app.py" line="402"/>
        <source>Audit</source>
        <translation>审计</translation>
    </message>
    <message>
        <location filename="../app.py" line="417"/>
        <source>Log in</source>
        <translation>登录</translation>
    </message>
    <message>
        <location filename="../app.py" line="423"/>
        <source>Log out</source>
        <translation>退出登录</translation>
    </message>
</context>
<context>
    <name>ModelPanel</name>
    <message>
        <location filename="../model_panel.py" line="157"/>
        <source>Running model: none loaded</source>
        <translation>运行模型：未加载</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="160"/>
        <source>Running model: %1 · backend %2</source>
        <translation>运行模型：%1 · 后端 %2</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="193"/>
        <source>swap models</source>
        <translation>更换模型</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="178"/>
        <source>Model package</source>
        <translation>模型包</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="180"/>
        <source>Model (*.tflite)</source>
        <translation>模型 (*.tflite)</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="194"/>
        <source>nobody is logged in</source>
        <translation>无人登录</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="192"/>
        <source>Only an engineer or admin may %1; %2</source>
        <translation>只有工程师或管理员可以%1；%2</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="145"/>
        <source>Processor: %1 · %2 cores · INT8 dot product: %3</source>
        <translation>处理器：%1 · %2 核 · INT8 点积指令：%3</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="152"/>
        <source>none (an INT8 model on it runs several times slower)</source>
        <translation>无（INT8 模型在其上运行慢数倍）</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="167"/>
        <source>the board and its mirror image only</source>
        <translation>仅原图与镜像两遍</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="167"/>
        <source>one pass</source>
        <translation>单遍检测</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="210"/>
        <source>Choose a model package (.tflite) first</source>
        <translation>请先选择模型包（.tflite）</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="214"/>
        <source>%1: not a .tflite file</source>
        <translation>%1：不是 .tflite 文件</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="223"/>
        <source>Verifying and warming up %1…</source>
        <translation>正在校验并预热 %1…</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="263"/>
        <source>Not swapped, the running model stays: %1</source>
        <translation>未更换，保持当前模型：%1</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="270"/>
        <source>Swapped to %1 on %2 (from the next board)</source>
        <translation>已更换为 %1（%2），从下一块板起生效</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="310"/>
        <source>DETECTOR ON THE LINE</source>
        <translation>产线上的检测器</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="311"/>
        <source>Package</source>
        <translation>模型包</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="312"/>
        <source>Choose…</source>
        <translation>选择…</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="313"/>
        <source>VERIFY AND SWAP</source>
        <translation>校验并更换</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="316"/>
        <source>The line keeps inspecting with the running model while the new one is verified and warmed up; it switches between two boards. A failed package leaves the running model in place. The swap lasts until the station restarts: install with &apos;pcb-inspector model install&apos; to keep it.</source>
        <translation>新模型校验和预热期间，产线继续使用当前模型检测，并在两块板之间切换。失败的模型包不会影响当前模型。更换在工位重启前有效：如需保留，请用“pcb-inspector model install”安装。</translation>
    </message>
    <message>
        <location filename="../model_panel.py" line="321"/>
        <source>SWAPS IN THIS SESSION</source>
        <translation>本次会话中的更换</translation>
    </message>
</context>
<context>
    <name>OperatorScreen</name>
    <message>
        <location filename="../operator_screen.py" line="588"/>
        <source>■  STOP</source>
        <translation>■  停止</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="588"/>
        <source>▶  START</source>
        <translation>▶  启动</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="612"/>
        <source>Board %1 · %2 · recipe %3 · model %4</source>
        <translation>板 %1 · %2 · 配方 %3 · 模型 %4</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="678"/>
        <source>INSPECTED</source>
        <translation>已检测</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="679"/>
        <source>PASSED</source>
        <translation>合格</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="680"/>
        <source>REJECTED</source>
        <translation>不合格</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="683"/>
        <source>SERIAL MISMATCH</source>
        <translation>序列号不符</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="684"/>
        <source>NO CODE READ</source>
        <translation>未读到条码</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="681"/>
        <source>YIELD</source>
        <translation>良率</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="682"/>
        <source>BOARDS/MIN</source>
        <translation>板/分钟</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="688"/>
        <source>LAST 20 BOARDS (newest right)</source>
        <translation>最近 20 块板（最新在右）</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="689"/>
        <source>Recipe</source>
        <translation>配方</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="693"/>
        <source>Waiting for the first board…</source>
        <translation>等待第一块板…</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="698"/>
        <source>Live image · tap a defect to zoom</source>
        <translation>实时图像 · 点击缺陷放大</translation>
    </message>
</context>
<context>
    <name>RecipeEditor</name>
    <message>
        <location filename="../recipe_editor.py" line="273"/>
        <source>ROI not usable: %1</source>
        <translation>ROI 不可用：%1</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="276"/>
        <source>This recipe inspects only %1% of the board: defects outside the ROI are ignored (PASS).</source>
        <translation>此配方只检测电路板的 %1%：ROI 以外的缺陷被忽略（判为合格）。</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="311"/>
        <location filename="../recipe_editor.py" line="314"/>
        <source>Not saved: %1</source>
        <translation>未保存：%1</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="321"/>
        <source>Saved: recipe %1 is used from the next board</source>
        <translation>已保存：配方 %1 从下一块板起生效</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="324"/>
        <source>Saved: recipe %1, used when the line switches to it (%2 is running)</source>
        <translation>已保存：配方 %1，产线切换到它时生效（当前运行 %2）</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="348"/>
        <source>Recipe %1 is applied but NOT stored (%2): it is lost at the next start; save again</source>
        <translation>配方 %1 已应用但未保存（%2）：下次启动时将丢失，请重新保存</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="365"/>
        <source>Reference image</source>
        <translation>参考图像</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="384"/>
        <source>✎ Draw ROI (tap corners)</source>
        <translation>✎ 绘制检测区域（点击各角）</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="385"/>
        <source>Clear ROI</source>
        <translation>清除检测区域</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="386"/>
        <source>Reference image…</source>
        <translation>参考图像…</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="387"/>
        <source>SCORE THRESHOLD PER CLASS</source>
        <translation>各类别置信度阈值</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="390"/>
        <source>Min. size</source>
        <translation>最小尺寸</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="391"/>
        <source>Defects allowed</source>
        <translation>允许缺陷数</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="392"/>
        <source>Save and apply</source>
        <translation>保存并应用</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="393"/>
        <source>Revert</source>
        <translation>还原</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="394"/>
        <source>No reference image: choose one</source>
        <translation>无参考图像：请选择</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="397"/>
        <source>ENGINEER EDITING: the station is NOT READY until you leave this screen</source>
        <translation>工程师编辑中：离开此页面前工位处于未就绪状态</translation>
    </message>
    <message>
        <location filename="../recipe_editor.py" line="398"/>
        <source>Saved</source>
        <translation>已保存</translation>
    </message>
</context>
<context>
    <name>RejectReason</name>
    <message>
        <location filename="../labels.py" line="32"/>
        <source>board not registered to the reference</source>
        <extracomment>Why the core rejected a board without (or despite) detections, by the English prefix the core writes (inspector/pipeline.py). The detail after the prefix (an exception text, a file name) stays as it is: it is for the engineer, the prefix is for the operator.</extracomment>
        <translation>板未能与参考图对位</translation>
    </message>
    <message>
        <location filename="../labels.py" line="33"/>
        <source>board not fully in view</source>
        <translation>板未完全在视野内</translation>
    </message>
    <message>
        <location filename="../labels.py" line="34"/>
        <source>image not inspectable</source>
        <translation>图像无法检测</translation>
    </message>
    <message>
        <location filename="../labels.py" line="35"/>
        <source>no reference image for this recipe</source>
        <translation>此配方没有参考图</translation>
    </message>
    <message>
        <location filename="../labels.py" line="36"/>
        <source>inference backlog full</source>
        <translation>推理队列已满</translation>
    </message>
    <message>
        <location filename="../labels.py" line="37"/>
        <source>trigger queue full</source>
        <translation>触发队列已满</translation>
    </message>
    <message>
        <location filename="../labels.py" line="38"/>
        <source>inspection failed</source>
        <translation>检测失败</translation>
    </message>
    <message>
        <location filename="../labels.py" line="39"/>
        <source>model not loaded</source>
        <translation>模型未加载</translation>
    </message>
    <message>
        <location filename="../labels.py" line="40"/>
        <source>station stopped</source>
        <translation>工位已停止</translation>
    </message>
    <message>
        <location filename="../labels.py" line="41"/>
        <source>camera not available</source>
        <translation>相机不可用</translation>
    </message>
    <message>
        <location filename="../labels.py" line="42"/>
        <source>camera error</source>
        <translation>相机错误</translation>
    </message>
    <message>
        <location filename="../labels.py" line="43"/>
        <source>camera lost</source>
        <translation>相机断开</translation>
    </message>
    <message>
        <location filename="../labels.py" line="44"/>
        <source>no frame</source>
        <translation>无图像</translation>
    </message>
    <message>
        <location filename="../labels.py" line="45"/>
        <source>serial mismatch</source>
        <translation>序列号不符</translation>
    </message>
    <message>
        <location filename="../labels.py" line="46"/>
        <source>board code unreadable</source>
        <translation>无法读取板上条码</translation>
    </message>
    <message>
        <location filename="../labels.py" line="47"/>
        <source>ROI does not fit the reference</source>
        <translation>检测区域与参考图像尺寸不符</translation>
    </message>
    <message>
        <location filename="../labels.py" line="49"/>
        <source>board image: low contrast: camera gamma to 1, black level to 0, or more light on copper</source>
        <translation>板图像：对比度低：相机 gamma 设为 1、黑电平设为 0，或加强铜面照明</translation>
    </message>
    <message>
        <location filename="../labels.py" line="52"/>
        <source>reference image: low contrast: camera gamma to 1, black level to 0, or more light on copper</source>
        <translation>参考图像：对比度低：相机 gamma 设为 1、黑电平设为 0，或加强铜面照明</translation>
    </message>
    <message>
        <location filename="../labels.py" line="55"/>
        <source>board image: over-exposed, lower the exposure, gain or light</source>
        <translation>板图像：过曝，请降低曝光、增益或光照</translation>
    </message>
    <message>
        <location filename="../labels.py" line="56"/>
        <source>reference image: over-exposed, lower the exposure, gain or light</source>
        <translation>参考图像：过曝，请降低曝光、增益或光照</translation>
    </message>
</context>
<context>
    <name>ReviewScreen</name>
    <message>
        <location filename="../review_screen.py" line="185"/>
        <source>Loading…</source>
        <translation>加载中…</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="210"/>
        <source>Inspection %1 not found</source>
        <translation>未找到检测记录 %1</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="218"/>
        <source>No archived image (%1)</source>
        <translation>无存档图像（%1）</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="219"/>
        <source>not archived</source>
        <translation>未存档</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="228"/>
        <source>Inspection %1 could not be read: %2</source>
        <translation>无法读取检测记录 %1：%2</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="250"/>
        <source>PASS</source>
        <translation>合格</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="250"/>
        <source>REJECT</source>
        <translation>不合格</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="275"/>
        <source>Log in to review</source>
        <translation>请登录后复判</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="304"/>
        <source>Judge every detection first (confirmed or false call), then Board OK</source>
        <translation>请先判定每个检出（确认或误报），再点“板合格，无补充”</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="319"/>
        <source>Saving…</source>
        <translation>保存中…</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="344"/>
        <source>Drag a box around the missed defect</source>
        <translation>拖动框选漏检的缺陷</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="357"/>
        <source>confirmed by %1</source>
        <translation>已由 %1 确认</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="358"/>
        <source>false call (%1)</source>
        <translation>误报（%1）</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="359"/>
        <source>not reviewed</source>
        <translation>未复判</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="364"/>
        <source>✓ Confirm</source>
        <translation>✓ 确认</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="365"/>
        <source>✗ False call</source>
        <translation>✗ 误报</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="370"/>
        <source>+ Draw missed defect</source>
        <translation>+ 框选漏检缺陷</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="371"/>
        <source>Board OK, nothing to add</source>
        <translation>板合格，无补充</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="372"/>
        <source>◀ History</source>
        <translation>◀ 历史</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="374"/>
        <source>No board selected</source>
        <translation>未选择板</translation>
    </message>
    <message>
        <location filename="../review_screen.py" line="375"/>
        <location filename="../review_screen.py" line="376"/>
        <source>Open a board from History.</source>
        <translation>请从历史中打开一块板。</translation>
    </message>
</context>
<context>
    <name>Role</name>
    <message>
        <location filename="../labels.py" line="66"/>
        <source>operator</source>
        <translation>操作员</translation>
    </message>
    <message>
        <location filename="../labels.py" line="67"/>
        <source>engineer</source>
        <translation>工程师</translation>
    </message>
    <message>
        <location filename="../labels.py" line="68"/>
        <source>admin</source>
        <translation>管理员</translation>
    </message>
</context>
<context>
    <name>ThresholdPanel</name>
    <message>
        <location filename="../threshold_panel.py" line="112"/>
        <source>Station runs: cannot read the model (%1)</source>
        <translation>工位当前值：无法读取模型（%1）</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="115"/>
        <source>Station runs: no station configuration</source>
        <translation>工位当前值：无工位配置</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="117"/>
        <source>Station runs: a model without a threshold (frames as they are)</source>
        <translation>工位当前值：此模型不做二值化（直接使用图像）</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="120"/>
        <source>Station runs %1 · recipe %2</source>
        <translation>工位当前值 %1 · 配方 %2</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="135"/>
        <source>Design of the golden board (copper layer at the camera&apos;s pixels)</source>
        <translation>金板的设计图（按相机像素栅格化的铜层）</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="137"/>
        <source>Images (*.png *.bmp *.tif *.tiff *.jpg)</source>
        <translation>图像 (*.png *.bmp *.tif *.tiff *.jpg)</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="153"/>
        <source>no station configuration</source>
        <translation>无工位配置</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="156"/>
        <source>recipe %1 has no golden reference: capture one first (calibrate reference)</source>
        <translation>配方 %1 没有金板参考图：请先采集（calibrate reference）</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="218"/>
        <source>The golden reference against its design: where copper and laminate split</source>
        <translation>用金板参考图对照其设计图：测定铜与基材的分割位置</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="221"/>
        <source>Measuring the golden reference against %1…</source>
        <translation>正在用金板参考图对照 %1 测量…</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="225"/>
        <source>Not calibrated: %1</source>
        <translation>未标定：%1</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="228"/>
        <source>Only an engineer or admin may %1; %2</source>
        <translation>只有工程师或管理员可以%1；%2</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="229"/>
        <source>calibrate the threshold</source>
        <translation>标定阈值位置</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="230"/>
        <source>nobody is logged in</source>
        <translation>无人登录</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="236"/>
        <source>Measured %1 (edges %2 px %3 at 0.50)</source>
        <translation>测得 %1（在 0.50 时边缘%3 %2 px）</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="239"/>
        <source>inward</source>
        <translation>向内偏</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="239"/>
        <source>outward</source>
        <translation>向外偏</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="242"/>
        <source>, stored as calibration %1</source>
        <translation>，已保存为标定 %1</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="244"/>
        <source>. The station already runs it.</source>
        <translation>。工位已在使用此值。</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="248"/>
        <source>.
To use it: %1 in station.toml, then restart the station.</source>
        <translation>。
启用方法：在 station.toml 中设置 %1，然后重启工位。</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="280"/>
        <source>THRESHOLD POSITION</source>
        <translation>阈值位置</translation>
    </message>
    <message>
        <location filename="../threshold_panel.py" line="281"/>
        <source>FROM DESIGN…</source>
        <translation>按设计图标定…</translation>
    </message>
</context>
<context>
    <name>UsersScreen</name>
    <message>
        <location filename="../users_screen.py" line="124"/>
        <source>disabled</source>
        <translation>已停用</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="179"/>
        <source>User %1 created</source>
        <translation>已创建用户 %1</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="197"/>
        <source>%1 is now %2</source>
        <translation>%1 现在是 %2</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="207"/>
        <source>You cannot disable yourself</source>
        <translation>不能停用自己</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="209"/>
        <source>%1 enabled</source>
        <translation>已启用 %1</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="209"/>
        <source>%1 disabled</source>
        <translation>已停用 %1</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="218"/>
        <source>User name</source>
        <translation>用户名</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="219"/>
        <source>Role</source>
        <translation>角色</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="220"/>
        <source>PIN or password</source>
        <translation>PIN 或密码</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="221"/>
        <source>Add user</source>
        <translation>添加用户</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="222"/>
        <source>Set role of selected</source>
        <translation>设置所选用户角色</translation>
    </message>
    <message>
        <location filename="../users_screen.py" line="223"/>
        <source>Disable / enable selected</source>
        <translation>停用 / 启用所选</translation>
    </message>
</context>
<context>
    <name>VerdictBanner</name>
    <message>
        <location filename="../operator_screen.py" line="143"/>
        <source>WAITING</source>
        <translation>等待中</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="144"/>
        <source>No board inspected yet</source>
        <translation>尚未检测任何板</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="148"/>
        <source>PASS</source>
        <translation>合格</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="148"/>
        <source>REJECT</source>
        <translation>不合格</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="149"/>
        <source>frame %1</source>
        <translation>帧 %1</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="151"/>
        <source>Serial %1</source>
        <translation>序列号 %1</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="152"/>
        <source>cycle %1 ms</source>
        <translation>节拍 %1 ms</translation>
    </message>
    <message numerus="yes">
        <location filename="../operator_screen.py" line="161"/>
        <source>%n defect(s): </source>
        <translation>
            <numerusform>%n 个缺陷：</numerusform>
        </translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="163"/>
        <source>No defects</source>
        <translation>无缺陷</translation>
    </message>
</context>
<context>
    <name>ZoomDialog</name>
    <message>
        <location filename="../operator_screen.py" line="83"/>
        <source>Defect</source>
        <translation>缺陷</translation>
    </message>
    <message>
        <location filename="../operator_screen.py" line="95"/>
        <source>Close</source>
        <translation>关闭</translation>
    </message>
</context>
<context>
    <name>window</name>
    <message>
        <location filename="../session_setup.py" line="177"/>
        <source>%1 review(s) stored</source>
        <translation>已保存 %1 条复判</translation>
    </message>
</context>
</TS>
